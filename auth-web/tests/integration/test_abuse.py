"""Challenges (reuse, expiry, binding), lockout, rate limits, CSRF, enumeration, bad captures.

The face services here are in-process fakes that say "live" and "match": whatever refuses below is auth-web.
"""

from __future__ import annotations

import datetime as dt
import io
import time

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from auth_web.login import GENERIC_FAILURE
from auth_web.models import User

from .conftest import (
    FRAME_TIMES,
    PASSWORD,
    Browser,
    FakeLiveness,
    FakeRecognition,
    audit_rows,
    create_user,
    last_reason,
    max_audit_id,
    reasons_since,
    unique_username,
)


@pytest.fixture
def fakes(fake_grpc):  # type: ignore[no-untyped-def]
    return fake_grpc(liveness=FakeLiveness(), recognition=FakeRecognition())


@pytest.fixture
def app(make_app, fakes):  # type: ignore[no-untyped-def]
    return make_app(liveness_target=fakes.address, recognition_target=fakes.address)


@pytest.fixture
def frames(frames_a_login: list[bytes]) -> list[bytes]:
    return frames_a_login[:6]


def test_login_with_fakes_succeeds(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    """Control for the refusals below: the same setup with nothing wrong signs in."""
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    response = browser.login(username, frames)
    assert response.status_code == 200, last_reason(db_engine, username)
    assert browser.signed_in_as() == username


def test_a_challenge_cannot_be_reused(app, db_engine, frames, fakes) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    nonce = browser.challenge(username)["nonce"]
    assert browser.submit("/api/login", nonce, frames, PASSWORD).status_code == 200
    # Same browser, same nonce again (e.g. a replayed request): refused before anything else.
    browser.refresh_csrf("/account")
    calls, since = fakes.liveness.calls, max_audit_id(db_engine)
    response = browser.submit("/api/login", nonce, frames, PASSWORD)
    assert response.status_code == 400
    assert response.get_json()["error"] == "challenge_invalid"
    assert fakes.liveness.calls == calls
    assert "CHALLENGE_INVALID" in reasons_since(db_engine, since)


def test_an_expired_challenge_is_refused(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, challenge_ttl_seconds=1)
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    challenge = browser.challenge(username)
    assert challenge["expires_in"] == 1
    time.sleep(1.6)
    response = browser.submit("/api/login", challenge["nonce"], frames, PASSWORD)
    assert response.status_code == 400 and response.get_json()["error"] == "challenge_invalid"
    assert browser.signed_in_as() is None


def test_a_challenge_belongs_to_the_browser_that_asked(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    victim, attacker = Browser(app.test_client()), Browser(app.test_client())
    victim.refresh_csrf()
    nonce = victim.challenge(username)["nonce"]
    attacker.refresh_csrf()
    since = max_audit_id(db_engine)
    response = attacker.submit("/api/login", nonce, frames, PASSWORD)
    assert response.status_code == 400
    assert attacker.signed_in_as() is None
    assert "CHALLENGE_SESSION_MISMATCH" in reasons_since(db_engine, since)


def test_lockout_after_repeated_failures(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        liveness_target=fakes.address, recognition_target=fakes.address, lockout_threshold=3, lockout_base_seconds=60
    )
    username = unique_username()
    user_id = create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    for _ in range(3):
        assert browser.login(username, frames, password="wrong password!").status_code == 401
    assert [row.reason for row in audit_rows(db_engine, username)] == ["BAD_PASSWORD"] * 3
    # Now even the right password and a matching face are refused, without asking the face services.
    calls = fakes.recognition.calls
    response = browser.login(username, frames)
    assert response.status_code == 401 and response.get_json()["message"] == GENERIC_FAILURE
    assert last_reason(db_engine, username) == "LOCKED"
    assert fakes.recognition.calls == calls
    with Session(db_engine) as session:
        user = session.get(User, user_id)
        assert user is not None and user.lockout_count == 1
        assert user.locked_until is not None
        remaining = user.locked_until - dt.datetime.now(dt.UTC)
        assert dt.timedelta(seconds=50) < remaining <= dt.timedelta(seconds=60)
        # Let the lock run out: the next good attempt gets in and resets the counters.
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.commit()
    assert browser.login(username, frames).status_code == 200
    with Session(db_engine) as session:
        user = session.get(User, user_id)
        assert user is not None and (user.failed_attempts, user.lockout_count, user.locked_until) == (0, 0, None)


def test_rate_limit_per_username_and_per_address(make_app, fakes, db_engine) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        rate_limit_login_per_username="3/minute",
        rate_limit_login_per_address="5/minute",
    )
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    for _ in range(3):
        assert browser.post_json("/api/login/challenge", {"username": "Target"}).status_code == 200
    response = browser.post_json("/api/login/challenge", {"username": "target"})  # same username, any case
    assert response.status_code == 429
    assert response.get_json()["error"] == "rate_limited"
    assert "Retry-After" in response.headers
    # Another username from the same address still works until the per-address limit (5) is spent.
    assert browser.post_json("/api/login/challenge", {"username": "someone-else"}).status_code == 200
    assert browser.post_json("/api/login/challenge", {"username": "third-user"}).status_code == 429
    assert audit_rows(db_engine, "target", "rate_limit")[-1].reason == "RATE_LIMITED"


def test_csrf_is_required_on_every_post(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.get("/login")
    response = client.post("/api/login/challenge", json={"username": "anyone"})
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"
    response = client.post("/api/login/challenge", json={"username": "anyone"}, headers={"X-CSRFToken": "forged"})
    assert response.status_code == 400
    data = {"nonce": "x", "frames": [(io.BytesIO(frames[0]), "f.jpg")]}
    assert client.post("/api/login", data=data, content_type="multipart/form-data").status_code == 400
    response = client.post("/register", data={"username": "csrfless", "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 400 and b"expired" in response.data
    assert client.post("/logout").status_code == 400


def test_unknown_user_and_bad_password_look_the_same(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    unknown_times, wrong_times = [], []
    for _ in range(3):
        started = time.perf_counter()
        unknown = browser.login(unique_username("ghost"), frames)
        unknown_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        wrong = browser.login(username, frames, password="not the password")
        wrong_times.append(time.perf_counter() - started)
        assert unknown.status_code == wrong.status_code == 401
        assert unknown.get_json() == wrong.get_json()
    # Both pay one argon2 verification; neither is an order of magnitude faster (best of 3 against noise).
    assert min(unknown_times) > min(wrong_times) / 5 and min(wrong_times) > min(unknown_times) / 5
    assert last_reason(db_engine, username) == "BAD_PASSWORD"


def test_face_only_mode_needs_no_password_and_refuses_unenrolled(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, factors="face")
    enrolled, bare = unique_username(), unique_username()
    create_user(db_engine, enrolled, password=None, templates=2)
    create_user(db_engine, bare)
    browser = Browser(app.test_client())
    calls = fakes.liveness.calls
    response = browser.login(bare, frames, password=None)
    assert response.status_code == 401 and last_reason(db_engine, bare) == "NO_TEMPLATES"
    assert fakes.liveness.calls == calls + 1  # the liveness work is done anyway (same timing)
    assert browser.login(enrolled, frames, password=None).status_code == 200
    assert browser.signed_in_as() == enrolled


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f[:2], "TOO_FEW_FRAMES"),
        (lambda f: (f * 3)[:17], "TOO_MANY_FRAMES"),
        (lambda f: [*f[:5], b"GIF89a"], "FRAME_UNSUPPORTED_FORMAT"),
    ],
)
def test_bad_captures_get_a_clear_400(app, db_engine, frames, mutate, reason) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    nonce = browser.challenge(username)["nonce"]
    bad = mutate(frames)
    response = browser.submit("/api/login", nonce, bad, PASSWORD, times=FRAME_TIMES[: len(bad)] + [0] * 20)
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_capture" and response.get_json()["message"]
    row = audit_rows(db_engine, username)[-1]
    assert row.reason == "BAD_CAPTURE" and row.details["capture"] == reason


def test_an_oversized_body_is_refused_with_413(make_app, fakes) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        liveness_target=fakes.address, recognition_target=fakes.address, max_frames=2, max_frame_bytes=16 * 1024
    )
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    big = b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024)
    response = browser.submit("/api/login", "nonce", [big], PASSWORD)
    assert response.status_code == 413
    assert response.get_json()["ok"] is False


def test_security_headers_and_cookie_flags(make_app, fakes) -> None:  # type: ignore[no-untyped-def]
    app = make_app(proxy_count=1)
    client = app.test_client()
    response = client.get("/login", headers={"X-Forwarded-Proto": "https", "X-Request-ID": "req-123"})
    assert response.headers["X-Request-ID"] == "req-123"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    # Over plain HTTP (no TLS at the gateway) the cookie cannot be Secure or the browser would drop it.
    plain = app.test_client().get("/login").headers["Set-Cookie"]
    assert "Secure" not in plain and "HttpOnly" in plain
    page = response.get_data(as_text=True)
    assert "<script>" not in page and "style=" not in page  # no inline code (the CSP forbids it)


def test_https_posts_work_without_a_referer_and_foreign_origins_fail(make_app, fakes) -> None:  # type: ignore[no-untyped-def]
    """Behind the gateway (TLS, Referrer-Policy: no-referrer) a same-site POST carries no Referer."""
    app = make_app(proxy_count=1)
    browser = Browser(app.test_client())
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "faceauth.example", "X-Forwarded-Port": "8443"}
    page = browser.client.get("/login", headers=https)
    import re

    token = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)
    headers = {**https, "X-CSRFToken": token, "Origin": "https://faceauth.example"}
    response = browser.client.post("/api/login/challenge", json={"username": "someone"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    headers["Origin"] = "https://evil.example"
    response = browser.client.post("/api/login/challenge", json={"username": "someone"}, headers=headers)
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"
