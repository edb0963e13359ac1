"""/readyz: the status code for everyone; per-dependency details only for internal callers."""

from __future__ import annotations

import pytest
from flask import Flask


class _Serving:
    def serving(self, service: str) -> bool:
        return service == "liveness"


@pytest.fixture(scope="module")
def app() -> Flask:
    # Redis on a closed port (refused at once), SQLite in memory, recognition "not serving": not ready.
    from auth_web import create_app
    from auth_web.config import Settings

    settings = Settings(
        redis_url="redis://127.0.0.1:1/0",
        database_url="sqlite://",
        redis_timeout_seconds=0.2,
        proxy_count=1,
        internal_addresses=("127.0.0.1", "::1", "10.0.0.0/8"),
    )
    return create_app(settings, face_services=_Serving())  # type: ignore[arg-type]


def test_a_public_caller_gets_only_ok(app: Flask) -> None:
    """Regression (issue 13): /readyz told anyone the state of every dependency."""
    response = app.test_client().get("/readyz", environ_overrides={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 503
    assert response.get_json() == {"ok": False}


def test_a_public_caller_through_the_trusted_proxy_gets_only_ok(app: Flask) -> None:
    forwarded = {"X-Forwarded-For": "198.51.100.2"}
    response = app.test_client().get("/readyz", headers=forwarded)  # peer 127.0.0.1: the gateway
    assert response.status_code == 503
    assert response.get_json() == {"ok": False}


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.4.5.6"])
def test_loopback_and_internal_callers_get_the_details(app: Flask, address: str) -> None:
    response = app.test_client().get("/readyz", environ_overrides={"REMOTE_ADDR": address})
    assert response.status_code == 503
    body = response.get_json()
    assert body["ok"] is False and body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "redis": "unavailable", "liveness": "ok", "recognition": "unavailable"}


def test_a_forged_forwarded_address_from_a_direct_client_does_not_unlock_the_details(app: Flask) -> None:
    response = app.test_client().get(
        "/readyz", headers={"X-Forwarded-For": "127.0.0.1"}, environ_overrides={"REMOTE_ADDR": "203.0.113.7"}
    )
    assert response.get_json() == {"ok": False}
