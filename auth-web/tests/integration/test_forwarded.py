"""X-Forwarded-For counts only from the trusted proxy: rate limits and the audit log see the real peer otherwise."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from auth_web.models import AuditEvent

from .conftest import Browser, unique_username


def _challenges(browser: Browser, name: str, peer: str, forwarded: list[str]) -> list[int]:
    statuses = []
    for address in forwarded:
        response = browser.client.post(
            "/api/login/challenge",
            json={"username": name},
            headers={"X-CSRFToken": browser.csrf, "X-Forwarded-For": address},
            environ_overrides={"REMOTE_ADDR": peer},
        )
        statuses.append(response.status_code)
    return statuses


def _addresses(engine, name: str, event: str) -> set[str | None]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.claimed_username == name, AuditEvent.event == event)
        ).all()
        return {row.client_address for row in rows}


def test_a_direct_clients_forged_forwarded_for_is_ignored(make_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 13): ProxyFix applied any peer's X-Forwarded-For, so a new forged address per request
    got a fresh rate-limit budget each time, and the audit log recorded the forged address."""
    app = make_app(proxy_count=1, rate_limit_login_per_address="3/minute")
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    name = unique_username("forged")
    forged = [f"203.0.113.{i}" for i in range(1, 6)]
    statuses = _challenges(browser, name, "198.51.100.20", forged)
    assert statuses == [200, 200, 200, 429, 429]
    assert _addresses(db_engine, name, "rate_limit") == {"198.51.100.20"}


def test_the_trusted_proxys_forwarded_for_is_the_client_address(make_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    app = make_app(proxy_count=1, rate_limit_login_per_address="3/minute")
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    name = unique_username("proxied")
    # Through the gateway (peer 127.0.0.1): each client address has its own budget ...
    assert _challenges(browser, name, "127.0.0.1", [f"192.0.2.{i}" for i in range(1, 6)]) == [200] * 5
    # ... and one client over its budget is refused, recorded under its own address.
    assert _challenges(browser, name, "127.0.0.1", ["192.0.2.9"] * 4) == [200, 200, 200, 429]
    assert _addresses(db_engine, name, "rate_limit") == {"192.0.2.9"}
