"""Each dependency down (Redis, Postgres, liveness, recognition, a slow service): 503, clear message, nobody in."""

from __future__ import annotations

import time

from .conftest import (
    Browser,
    FakeLiveness,
    FakeRecognition,
    audit_rows,
    create_user,
    dead_address,
    unique_username,
)

UNAVAILABLE = "temporarily unavailable"


def assert_unavailable_json(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["ok"] is False and body["error"] == "temporarily_unavailable"
    assert UNAVAILABLE in body["message"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_redis_down(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(redis_url=f"redis://{dead_address()}/0", redis_timeout_seconds=0.5)
    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 503
    assert UNAVAILABLE in page.get_data(as_text=True) and "Traceback" not in page.get_data(as_text=True)
    assert_unavailable_json(client.post("/api/login/challenge", json={"username": "anyone"}))
    # Health: the process is up, but not ready.
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["redis"] == "unavailable"


def test_postgres_down(make_app, fake_grpc, frames_a_login) -> None:  # type: ignore[no-untyped-def]
    fakes = fake_grpc(liveness=FakeLiveness(), recognition=FakeRecognition())
    app = make_app(
        database_url=f"postgresql+psycopg2://postgres@{dead_address()}/faceauth",
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        db_connect_timeout_seconds=1,
    )
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    nonce = browser.challenge("someone")["nonce"]  # issuing a challenge needs Redis only
    assert_unavailable_json(browser.submit("/api/login", nonce, frames_a_login[:6], "whatever password"))
    assert browser.client.get("/account").status_code == 302  # still anonymous
    page = browser.register(unique_username())
    assert page.status_code == 503 and UNAVAILABLE in page.get_data(as_text=True)
    ready = browser.client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["database"] == "unavailable"


def _login_with(make_app, db_engine, frames, **targets):  # type: ignore[no-untyped-def]
    app = make_app(**targets)
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    started = time.perf_counter()
    response = browser.login(username, frames)
    elapsed = time.perf_counter() - started
    return app, browser, username, response, elapsed


def test_liveness_down(make_app, fake_grpc, db_engine, frames_a_login) -> None:  # type: ignore[no-untyped-def]
    recognition = fake_grpc(recognition=FakeRecognition())
    app, browser, username, response, _ = _login_with(
        make_app, db_engine, frames_a_login[:6], liveness_target=dead_address(), recognition_target=recognition.address
    )
    assert_unavailable_json(response)
    assert browser.signed_in_as() is None
    row = audit_rows(db_engine, username)[-1]
    assert (row.result, row.reason, row.details["service"]) == ("error", "SERVICE_UNAVAILABLE", "liveness")
    ready = app.test_client().get("/readyz").get_json()["checks"]
    assert ready["liveness"] == "unavailable" and ready["recognition"] == "ok"


def test_recognition_down(make_app, fake_grpc, db_engine, frames_a_login) -> None:  # type: ignore[no-untyped-def]
    liveness = fake_grpc(liveness=FakeLiveness())
    app, browser, username, response, _ = _login_with(
        make_app, db_engine, frames_a_login[:6], liveness_target=liveness.address, recognition_target=dead_address()
    )
    assert_unavailable_json(response)
    assert browser.signed_in_as() is None
    row = audit_rows(db_engine, username)[-1]
    assert (row.result, row.reason, row.details["service"]) == ("error", "SERVICE_UNAVAILABLE", "recognition")
    ready = app.test_client().get("/readyz").get_json()["checks"]
    assert ready["recognition"] == "unavailable" and ready["liveness"] == "ok"


def test_deadline_exceeded(make_app, fake_grpc, db_engine, frames_a_login) -> None:  # type: ignore[no-untyped-def]
    slow = fake_grpc(liveness=FakeLiveness(delay=3.0), recognition=FakeRecognition())
    _app, browser, username, response, elapsed = _login_with(
        make_app,
        db_engine,
        frames_a_login[:6],
        liveness_target=slow.address,
        recognition_target=slow.address,
        liveness_deadline_seconds=0.5,
    )
    assert_unavailable_json(response)
    assert elapsed < 2.5  # the deadline, not the slow service, decided how long the user waited
    assert browser.signed_in_as() is None
    assert audit_rows(db_engine, username)[-1].details["code"] == "DEADLINE_EXCEEDED"


def test_liveness_and_recognition_are_called_in_parallel(make_app, fake_grpc, db_engine, frames_a_login) -> None:  # type: ignore[no-untyped-def]
    slow = fake_grpc(liveness=FakeLiveness(delay=1.0), recognition=FakeRecognition(delay=1.0))
    _app, _browser, _username, response, elapsed = _login_with(
        make_app, db_engine, frames_a_login[:6], liveness_target=slow.address, recognition_target=slow.address
    )
    assert response.status_code == 200
    assert elapsed < 1.9  # sequential calls would take at least 2 s
