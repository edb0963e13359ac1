"""Challenges (reuse, expiry, binding), throttling and locks, rate limits, CSRF, enumeration, bad captures.

The face services here are in-process fakes that say "live" and "match": whatever refuses below is auth-web.
"""

from __future__ import annotations

import io
import time
from typing import Any

import cv2
import grpc
import numpy as np
import pytest
from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from auth_web import login_flow
from auth_web.errors import RATE_LIMITED_MESSAGE
from auth_web.login import GENERIC_FAILURE
from auth_web.models import STATUS_DISABLED, User

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
    sign_in_directly,
    unique_username,
)

ATTACKER = "203.0.113.66"
VICTIM = "198.51.100.7"


class DecodingLiveness(FakeLiveness):
    """Says live, but like the real service refuses a frame that does not decode (INVALID_ARGUMENT)."""

    def Check(self, request, context):  # type: ignore[no-untyped-def]
        for frame in request.frames:
            if cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR) is None:
                self.calls += 1
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a frame could not be decoded")
        return super().Check(request, context)


class RecordingRecognition(FakeRecognition):
    """Says match; remembers how many templates each Verify carried."""

    def __init__(self) -> None:
        super().__init__()
        self.template_counts: list[int] = []

    def Verify(self, request, context):  # type: ignore[no-untyped-def]
        self.template_counts.append(len(request.templates))
        return super().Verify(request, context)


@pytest.fixture
def fakes(fake_grpc):  # type: ignore[no-untyped-def]
    return fake_grpc(liveness=DecodingLiveness(), recognition=RecordingRecognition())


def at(app: Flask, address: str) -> Browser:
    """A browser whose requests come from ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Browser(client)


@pytest.fixture
def argon2_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the argon2 verifications a login does (one element per call)."""
    calls: list[int] = []
    real = login_flow.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        calls.append(1)
        return real(password_hash, password)

    monkeypatch.setattr(login_flow, "verify_password", counting)
    return calls


def work(fakes: Any, argon2_checks: list[int]) -> tuple[int, int, int]:
    """(argon2 verifications, liveness Checks, recognition Verifies) done so far."""
    return len(argon2_checks), fakes.liveness.calls, fakes.recognition.calls


def spent(before: tuple[int, int, int], after: tuple[int, int, int]) -> tuple[int, ...]:
    return tuple(b - a for a, b in zip(before, after, strict=True))


#: Throttle settings that never delay (tests about locks and counting, not about delays).
NO_DELAYS = {
    "throttle_free_attempts": 1000,
    "throttle_address_free_attempts": 1000,
    "throttle_username_free_attempts": 1000,
}


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


def test_an_attackers_address_cannot_lock_the_victim_out(make_app, fakes, db_engine, frames, argon2_checks) -> None:  # type: ignore[no-untyped-def]
    """Before: 5 wrong passwords from anywhere locked the account for everyone. Now the lock binds the
    attacker's address; the victim at another address signs in."""
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, lockout_threshold=3, **NO_DELAYS)
    username = unique_username()
    user_id = create_user(db_engine, username, templates=2)
    attacker, victim = at(app, ATTACKER), at(app, VICTIM)
    for _ in range(3):
        assert attacker.login_with_password_in_capture(username, frames, password="wrong password!").status_code == 401
    assert [row.reason for row in audit_rows(db_engine, username)] == ["BAD_PASSWORD"] * 3
    # The attacker's address is locked: even the right password and a matching face are refused there ...
    response = attacker.login_with_password_in_capture(username, frames)
    assert response.status_code == 429 and response.get_json()["error"] == "locked"
    row = audit_rows(db_engine, username)[-1]
    assert (row.reason, row.user_id, row.client_address) == ("LOCKED", user_id, ATTACKER)
    assert attacker.signed_in_as() is None
    # ... while the victim, from elsewhere, gets a challenge and signs in.
    response = victim.login_with_password_in_capture(username, frames)
    assert response.status_code == 200, last_reason(db_engine, username)
    assert victim.signed_in_as() == username


@pytest.mark.parametrize("known", [True, False], ids=["existing account", "unknown username"])
def test_a_lock_is_told_with_its_wait_before_any_factor_is_checked(  # type: ignore[no-untyped-def]
    make_app, fakes, db_engine, frames, argon2_checks, known
) -> None:
    """A locked pair is told so, and for how long (issue 16: "a locked account is told how long to wait"), before
    a password or a face is looked at: nothing is verified, so nothing is learned and no failure is added (the
    wait it names is the one that holds). The lock binds name + address whether or not the account exists, so the
    answer is the same for an unknown username: it tells nothing about the account."""
    window = 900
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        lockout_threshold=2,
        lockout_window_seconds=window,
        **NO_DELAYS,
    )
    username = unique_username()
    if known:
        create_user(db_engine, username, templates=2)
    attacker = at(app, ATTACKER)
    for _ in range(2):  # the second failure locks
        assert attacker.login(username, frames, password="wrong password!").status_code == 401
    with app.app_context():
        log = login_flow.context.failure_log()
        counted = [int(log.client.zcard(key)) for key in log._keys(username, ATTACKER).values()]
    for attempt in (
        lambda: attacker.login(username, frames),  # right password, matching face: the password step
        lambda: attacker.login_with_password_in_capture(username, frames),  # the challenge
    ):
        before = work(fakes, argon2_checks)
        locked = attempt()
        assert spent(before, work(fakes, argon2_checks)) == (0, 0, 0)
        body = locked.get_json()
        assert locked.status_code == 429 and body["error"] == "locked"
        assert 0 < body["retry_after"] <= window and locked.headers["Retry-After"] == str(body["retry_after"])
        minutes = -(-body["retry_after"] // 60)
        assert body["message"] == (
            f"Too many failed sign-ins for this account from your network. Try again in {minutes} minutes."
        )
        assert last_reason(db_engine, username) == "LOCKED" and attacker.signed_in_as() is None
    with app.app_context():
        assert [int(log.client.zcard(key)) for key in log._keys(username, ATTACKER).values()] == counted


def test_failures_older_than_the_window_are_forgotten(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    """Before: the failure count never decayed, so two failures a month apart counted as consecutive."""
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        lockout_threshold=2,
        lockout_window_seconds=2,
        **NO_DELAYS,
    )
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = at(app, VICTIM)
    assert browser.login(username, frames, password="wrong password!").status_code == 401
    time.sleep(2.3)  # the first failure leaves the window
    assert browser.login(username, frames, password="wrong password!").status_code == 401
    response = browser.login(username, frames)
    assert response.status_code == 200, last_reason(db_engine, username)


def test_failures_slow_down_before_anything_locks(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    """Soft delays first: past the free failures the next attempt waits (429 + Retry-After, no work done, no
    failure counted), and only that address waits. A challenge is charged when it is issued."""
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        throttle_free_attempts=1,
        throttle_base_seconds=1.0,
        throttle_max_seconds=1.0,
    )
    username = unique_username()
    create_user(db_engine, username, templates=2)
    attacker = at(app, ATTACKER)
    attacker.refresh_csrf()
    early = attacker.challenge(username)["nonce"]  # charged at once: the free failure
    spare = attacker.challenge(username)["nonce"]  # the second: it earns a 1 s wait
    assert attacker.submit("/api/login", early, frames, "wrong password!").status_code == 401  # not counted again
    response = attacker.post_json("/api/login/challenge", {"username": username})
    assert response.status_code == 429
    assert response.get_json()["error"] == "rate_limited" and response.get_json()["message"] == RATE_LIMITED_MESSAGE
    assert response.headers["Retry-After"] == "1" and response.get_json()["retry_after"] == 1
    assert audit_rows(db_engine, username, "rate_limit")[-1].details["throttle"] == "pair"
    # Another failure while the spare is held: the spare's attempt is judged without its own (prepaid) charge,
    # but the failures of the others now exceed the free one, so it waits: no work, nothing counted.
    with app.app_context():
        from auth_web import context

        context.failure_log().record_failure(username, ATTACKER)
    calls, rows = fakes.recognition.calls, len(audit_rows(db_engine, username))
    held = attacker.submit("/api/login", spare, frames, PASSWORD)
    assert held.status_code == 429 and "Retry-After" in held.headers
    assert fakes.recognition.calls == calls and len(audit_rows(db_engine, username)) == rows
    # Another address is not held back; after the wait the attacker's address may try again.
    assert at(app, VICTIM).login(username, frames).status_code == 200
    time.sleep(1.1)
    assert attacker.login(username, frames).status_code == 200


def test_a_distributed_attack_on_a_username_slows_it_down_but_never_locks_its_owner_out(
    make_app, fakes, db_engine, frames
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        throttle_username_free_attempts=3,
        throttle_base_seconds=30.0,
        throttle_max_seconds=30.0,
    )
    username = unique_username()
    create_user(db_engine, username, templates=2)
    home = at(app, VICTIM)
    assert home.login(username, frames).status_code == 200  # the owner's usual address
    for index in range(4):  # four addresses, one failure each: no pair or address budget is touched
        assert at(app, f"203.0.113.{index}").login(username, frames, password="wrong!").status_code == 401
    # The username as a whole now waits (soft: 429 with a bounded Retry-After, never a lock) ...
    newcomer = at(app, "192.0.2.50")
    newcomer.refresh_csrf()
    response = newcomer.post_json("/api/login/challenge", {"username": username})
    assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 30
    # ... except for the address its owner signed in from.
    owner = at(app, VICTIM)
    assert owner.login(username, frames).status_code == 200 and owner.signed_in_as() == username


def test_one_address_spraying_many_usernames_is_locked(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        liveness_target=fakes.address, recognition_target=fakes.address, lockout_address_threshold=3, **NO_DELAYS
    )
    target = unique_username()
    create_user(db_engine, target, templates=2)
    sprayer = at(app, ATTACKER)
    for _ in range(3):
        assert sprayer.login(unique_username("guess"), frames, password="Winter2026!").status_code == 401
    locked = sprayer.login(target, frames)
    assert locked.status_code == 429 and last_reason(db_engine, target) == "LOCKED"
    assert locked.get_json()["message"].startswith("Too many failed sign-ins from your network.")
    assert at(app, VICTIM).login(target, frames).status_code == 200


def test_an_admin_enabling_the_account_forgets_its_failed_logins(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, lockout_threshold=2, **NO_DELAYS)
    username = unique_username()
    user_id = create_user(db_engine, username, templates=2)
    shared = at(app, ATTACKER)  # e.g. one office's NAT: the owner shares the attacker's address
    for _ in range(2):
        assert shared.login(username, frames, password="wrong password!").status_code == 401
    assert shared.login(username, frames).status_code == 429 and last_reason(db_engine, username) == "LOCKED"
    admin = at(app, VICTIM)
    sign_in_directly(admin, create_user(db_engine, unique_username("admin"), role="admin"))
    admin.refresh_csrf("/admin/users")
    response = admin.client.post(f"/admin/users/{user_id}/enable", headers={"X-CSRFToken": admin.csrf})
    assert response.status_code == 302
    assert shared.login(username, frames).status_code == 200


def test_rate_limit_per_username_and_address_and_per_address(make_app, fakes, db_engine) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        rate_limit_login_per_username="3/minute",
        rate_limit_login_per_address="5/minute",
    )
    browser = at(app, ATTACKER)
    browser.refresh_csrf()
    for _ in range(3):
        assert browser.post_json("/api/login/challenge", {"username": "Target"}).status_code == 200
    response = browser.post_json("/api/login/challenge", {"username": "target"})  # same username, any case
    assert response.status_code == 429
    assert response.get_json()["error"] == "rate_limited"
    assert "Retry-After" in response.headers
    # Before: the victim's own request from another address was refused too (the budget was per username).
    victim = at(app, VICTIM)
    victim.refresh_csrf()
    assert victim.post_json("/api/login/challenge", {"username": "target"}).status_code == 200
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
    response = browser.login(bare, frames, password=None)
    assert response.status_code == 401 and last_reason(db_engine, bare) == "NO_TEMPLATES"
    assert browser.login(enrolled, frames, password=None).status_code == 200
    assert browser.signed_in_as() == enrolled


def test_face_only_mode_does_the_same_work_for_unknown_and_known_users(
    make_app, fakes, db_engine, frames, argon2_checks
) -> None:  # type: ignore[no-untyped-def]
    """Before: an unknown user only ran liveness (~310 ms), a known one liveness ∥ recognition (~660 ms), so the
    time told whether a username exists. Now recognition runs against decoy templates (as many as an
    enrollment stores) whenever the claimed user has none: unknown, not enrolled, disabled."""
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, factors="face")
    known, bare, disabled = unique_username(), unique_username(), unique_username()
    create_user(db_engine, known, password=None, templates=5)
    create_user(db_engine, bare, password=None)
    disabled_id = create_user(db_engine, disabled, password=None, templates=5)
    with Session(db_engine) as session:
        session.execute(update(User).where(User.id == disabled_id).values(status=STATUS_DISABLED))
        session.commit()
    browser = Browser(app.test_client())
    answers, spent_work = {}, {}
    for name in (unique_username("ghost"), bare, disabled, known):
        before = work(fakes, argon2_checks)
        answers[name] = browser.login(name, frames, password=None)
        spent_work[name] = spent(before, work(fakes, argon2_checks))
    assert set(spent_work.values()) == {(0, 1, 1)}  # no password factor; one Check, one Verify each
    assert fakes.recognition.template_counts[-4:] == [5, 5, 5, 5]
    refused = [answers[name] for name in answers if name != known]
    assert all(r.status_code == 401 and r.get_json() == refused[0].get_json() for r in refused)
    assert answers[known].status_code == 200
    assert [last_reason(db_engine, name) for name in (bare, disabled)] == ["NO_TEMPLATES", "DISABLED"]


def test_a_wrong_password_costs_the_same_work_as_a_right_one(make_app, fakes, db_engine, frames, argon2_checks) -> None:  # type: ignore[no-untyped-def]
    """Before: a wrong password was refused before the face services (24 ms against seconds), so the time of a
    refusal told whether the password was right. Now the face is checked whatever the password was."""
    username = unique_username()
    create_user(db_engine, username, templates=2)
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address)
    browser = Browser(app.test_client())
    for password in ("wrong password!", None, ""):
        before = work(fakes, argon2_checks)
        response = browser.login_with_password_in_capture(username, frames, password=password)
        assert response.status_code == 401 and response.get_json()["message"] == GENERIC_FAILURE
        assert spent(before, work(fakes, argon2_checks)) == (1, 1, 1)
    before = work(fakes, argon2_checks)
    unknown = browser.login_with_password_in_capture(unique_username("ghost"), frames)
    assert spent(before, work(fakes, argon2_checks)) == (1, 1, 1)
    assert unknown.status_code == 401 and fakes.recognition.template_counts[-1] == 5  # decoys
    before = work(fakes, argon2_checks)
    assert browser.login_with_password_in_capture(username, frames).status_code == 200
    assert spent(before, work(fakes, argon2_checks)) == (1, 1, 1)


def truncated(frame: bytes) -> bytes:
    """A JPEG cut short: its header passes auth-web's checks, the decoder gives up."""
    return frame[: len(frame) // 3]


@pytest.mark.parametrize(
    ("mutate", "times", "reason"),
    [
        (lambda f: [*f[:5], truncated(f[5])], None, "REJECTED_BY_SERVICE"),
        (lambda f: f[:2], None, "TOO_FEW_FRAMES"),
        (lambda f: (f * 5)[:25], None, "TOO_MANY_FRAMES"),
        (lambda f: [*f[:5], b"GIF89a"], None, "FRAME_UNSUPPORTED_FORMAT"),
        (lambda f: f, [5, 4, 3, 2, 1, 0], "BAD_FRAME_TIMES"),
    ],
)
@pytest.mark.parametrize("password", [PASSWORD, "wrong password!"])
def test_a_bad_capture_is_refused_counted_and_audited_like_any_failure(
    make_app, fakes, db_engine, frames, mutate, times, reason, password
) -> None:  # type: ignore[no-untyped-def]
    """Before: the right password with one truncated JPEG answered 400 uncounted and unaudited, a wrong one 401:
    the password could be tested without the face. Now every capture error after a valid challenge is a
    failed login: the same 401 and generic message as any other, audited with the user, and counted."""
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, lockout_threshold=2, **NO_DELAYS)
    username = unique_username()
    user_id = create_user(db_engine, username, templates=2)
    browser = at(app, ATTACKER)
    reference = browser.login_with_password_in_capture(
        username, frames, password="wrong password!"
    )  # an ordinary failure (the 1st)
    browser.refresh_csrf()
    nonce = browser.challenge(username)["nonce"]
    bad = mutate(frames)
    sent_times = times if times is not None else FRAME_TIMES[: len(bad)] + [0] * max(0, len(bad) - len(FRAME_TIMES))
    response = browser.submit("/api/login", nonce, bad, password, times=sent_times)
    assert response.status_code == reference.status_code == 401
    assert response.get_json() == reference.get_json()
    row = audit_rows(db_engine, username)[-1]
    expected = "BAD_CAPTURE" if password == PASSWORD else "BAD_PASSWORD"
    assert (row.result, row.reason, row.user_id, row.details["capture"]) == ("failure", expected, user_id, reason)
    # Counted: that was the 2nd failure from this address, which locks it (threshold 2) ...
    assert (
        browser.login_with_password_in_capture(username, frames).status_code == 429
        and last_reason(db_engine, username) == "LOCKED"
    )
    # ... and the owner elsewhere is unaffected.
    assert at(app, VICTIM).login_with_password_in_capture(username, frames).status_code == 200


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
