"""The screen-flash challenge, the capture time limit, charged challenges and the admin calibration API — through
auth-web with in-process fake services (they say "live", "reflected" and "match": whatever refuses here is
auth-web). The real services' side is in test_face_login.py.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from auth_web import context
from auth_web.flash import LEAD_MS, MIN_STEP_MS, PALETTE, capture_ms, frames_to_cover
from auth_web.login import FACE_FAILED, GENERIC_FAILURE
from auth_web.login_flow import FACE_ADVICE, face_advice
from faceauth.liveness.v1 import liveness_pb2

from .conftest import (
    PASSWORD,
    Browser,
    FakeLiveness,
    FakeRecognition,
    Shot,
    audit_rows,
    create_user,
    last_reason,
    sign_in_directly,
    unique_username,
)

ADDRESS = "203.0.113.80"
NO_DELAYS = {
    "throttle_free_attempts": 1000,
    "throttle_address_free_attempts": 1000,
    "throttle_username_free_attempts": 1000,
}


def at(app: Flask, address: str = ADDRESS) -> Browser:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Browser(client)


def test_a_challenge_carries_a_random_flash_and_enough_frames_to_cover_it(app: Flask) -> None:
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    sequences = set()
    for _ in range(5):
        body = browser.challenge(unique_username())
        flash = body["flash"]
        assert flash["notice_ms"] == 1500 and flash["lead_ms"] == LEAD_MS and 4 <= len(flash["steps"]) <= 6
        colours = [step["colour"] for step in flash["steps"]]
        assert set(colours) <= {f"#{rgb:06x}" for rgb in PALETTE}
        assert all(a != b for a, b in itertools.pairwise(colours))
        assert all(MIN_STEP_MS <= 340 <= step["duration_ms"] <= 450 for step in flash["steps"])
        total = sum(step["duration_ms"] for step in flash["steps"])
        capture = body["capture"]
        # The unlit lead-in, the sequence and its tail.
        assert capture["frames"] == frames_to_cover(capture_ms(total), capture["fps"])
        assert (capture["frames"] - 1) * 1000 / capture["fps"] >= LEAD_MS + total + 200
        sequences.add(tuple((step["colour"], step["duration_ms"]) for step in flash["steps"]))
    assert len(sequences) == 5


def test_the_issued_sequence_and_flash_start_reach_liveness(app: Flask, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    body = browser.challenge(username)
    response = browser.submit("/api/login", body["nonce"], frames, PASSWORD, flash_start_ms=-42)
    assert response.status_code == 200, last_reason(db_engine, username)
    sent = fakes.liveness.requests[-1]
    assert [(f"#{step.rgb:06x}", step.duration_ms) for step in sent.flash] == [
        (step["colour"], step["duration_ms"]) for step in body["flash"]["steps"]
    ]
    assert sent.flash_start_ms == -42
    row = audit_rows(db_engine, username)[-1]
    assert row.details["flash"]["reflected"] is True and row.details["flash"]["score"] == pytest.approx(0.9)
    assert "planarity_residual" in row.details


@pytest.mark.parametrize("start", [None, "", "soon", "1.5", "999999999"])
def test_a_missing_or_garbled_flash_start_is_refused_like_a_bad_capture(
    app: Flask, fakes, db_engine, frames, start: str | None
) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    user_id = create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    nonce = browser.challenge(username)["nonce"]
    calls = fakes.liveness.calls
    shot = browser.shoot(nonce, frames)
    shot = Shot(shot.frames, shot.times, None)  # the page's field left out ...
    response = browser.submit("/api/login", nonce, shot, PASSWORD, flash_start_ms=start)  # ... or garbled
    assert response.status_code == 401 and response.get_json()["message"] == GENERIC_FAILURE
    assert fakes.liveness.calls == calls
    row = audit_rows(db_engine, username)[-1]
    assert (row.reason, row.user_id, row.details["capture"]) == ("BAD_CAPTURE", user_id, "BAD_FLASH_START")


def test_flash_off_sends_no_sequence_and_needs_no_flash_start(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, flash_enabled=False)
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    body = browser.challenge(username)
    assert body["flash"] is None and body["capture"]["frames"] == 15
    response = browser.submit("/api/login", body["nonce"], frames, PASSWORD)
    assert response.status_code == 200, last_reason(db_engine, username)
    assert len(fakes.liveness.requests[-1].flash) == 0
    assert audit_rows(db_engine, username)[-1].details["flash"] is None


class NoFlashLiveness(FakeLiveness):
    """Live, but like a liveness-service whose LIVENESS_CHECKS lack `flash`: no flash result."""

    def Check(self, request, context):  # type: ignore[no-untyped-def]
        response = super().Check(request, context)
        response.ClearField("flash")
        return response


class UnreflectedLiveness(FakeLiveness):
    def Check(self, request, context):  # type: ignore[no-untyped-def]
        response = super().Check(request, context)
        response.live = False
        response.reason = liveness_pb2.LIVENESS_REASON_FLASH_NOT_REFLECTED
        response.failed_checks.append(liveness_pb2.LIVENESS_REASON_FLASH_NOT_REFLECTED)
        response.flash.reflected = False
        response.flash.score = 0.12
        return response


@pytest.mark.parametrize(
    ("liveness", "reason"),
    [(NoFlashLiveness, "FLASH_NOT_CHECKED"), (UnreflectedLiveness, "LIVENESS_FLASH_NOT_REFLECTED")],
)
def test_a_flash_not_checked_or_not_reflected_lets_nobody_in(
    make_app, fake_grpc, db_engine, frames, liveness, reason
) -> None:  # type: ignore[no-untyped-def]
    services = fake_grpc(liveness=liveness(), recognition=FakeRecognition())
    app = make_app(liveness_target=services.address, recognition_target=services.address)
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    response = browser.login(username, frames)
    # The password was right (checked first), so the answer says what went wrong with the face.
    assert response.status_code == 401 and response.get_json()["message"] == face_advice(reason, FACE_FAILED)
    assert browser.signed_in_as() is None and last_reason(db_engine, username) == reason


def _flash_scores(purpose: str) -> float:
    return REGISTRY.get_sample_value("faceauth_flash_score_count", {"purpose": purpose}) or 0.0


def test_the_flash_score_is_a_metric(app: Flask, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    before = _flash_scores("login")
    assert Browser(app.test_client()).login(username, frames).status_code == 200
    assert _flash_scores("login") == before + 1


# -- the time limit ---------------------------------------------------------------------------------------------


def test_a_capture_posted_after_the_time_limit_is_refused(app: Flask, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    """Time to render frames for the sequence offline is not given: past placement wait + notice + capture + slack the
    POST is refused with the generic answer, before any face work."""
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    nonce = browser.challenge(username)["nonce"]
    late = browser.page_seconds(nonce) + 8.0 + 0.5  # AUTH_CAPTURE_SLACK_SECONDS 8
    calls = fakes.liveness.calls
    response = browser.submit("/api/login", nonce, frames, PASSWORD, elapsed=late)
    assert response.status_code == 401 and response.get_json()["message"] == GENERIC_FAILURE
    assert fakes.liveness.calls == calls and browser.signed_in_as() is None
    row = audit_rows(db_engine, username)[-1]
    assert row.reason == "CHALLENGE_LATE" and row.details["elapsed_seconds"] >= late


def test_a_capture_posted_sooner_than_it_could_be_filmed_is_refused(app: Flask, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    response = browser.login(username, frames, elapsed=0.0)  # at once: the sequence alone takes ≥ 1.36 s
    assert response.status_code == 401 and response.get_json()["message"] == FACE_ADVICE["CAPTURE_TOO_EARLY"]
    assert last_reason(db_engine, username) == "CAPTURE_TOO_EARLY"
    assert browser.login(username, frames).status_code == 200  # the same with the page's timing


def test_a_late_or_early_enrollment_is_refused(app: Flask, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    browser = Browser(app.test_client())
    sign_in_directly(browser, create_user(db_engine, username))
    response = browser.enroll(frames, elapsed=60.0)
    assert response.status_code == 400 and response.get_json()["error"] == "challenge_invalid"
    assert last_reason(db_engine, username, "enroll") == "CHALLENGE_LATE"
    response = browser.enroll(frames, elapsed=0.0)
    assert response.status_code == 400 and response.get_json()["error"] == "bad_capture"
    assert last_reason(db_engine, username, "enroll") == "CAPTURE_TOO_EARLY"
    assert fakes.liveness.calls == 0  # neither was judged


# -- challenges are charged -----------------------------------------------------------------------------------


def test_challenges_are_counted_and_eventually_throttle(make_app, fakes, db_engine) -> None:  # type: ignore[no-untyped-def]
    """Before: a challenge was free; fetching them until an easy pair of actions came cost nothing. Now each
    counts like a failed attempt: past the free ones, the next challenge waits, whether or not any was used."""
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        throttle_free_attempts=3,
        throttle_base_seconds=30.0,
        throttle_max_seconds=30.0,
    )
    username = unique_username()
    create_user(db_engine, username, templates=2)
    rerolls = at(app)
    rerolls.refresh_csrf()
    for _ in range(4):
        assert rerolls.challenge(username)["ok"]
    response = rerolls.post_json("/api/login/challenge", {"username": username})
    assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 30
    assert audit_rows(db_engine, username, "rate_limit")[-1].details["throttle"] == "pair"
    # Only that address for that name: the owner elsewhere gets a challenge.
    elsewhere = at(app, "198.51.100.90")
    elsewhere.refresh_csrf()
    assert elsewhere.challenge(username)["ok"]


def _pair_failures(app: Flask, username: str, address: str) -> int:
    with app.app_context():
        log = context.failure_log()
        return int(log.client.zcard(log._keys(username, address)["pair"]))


def test_a_failed_attempt_is_not_counted_twice(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, **NO_DELAYS)
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = at(app)
    for expected in (1, 2, 3):
        assert browser.login(username, frames, password="wrong password!").status_code == 401
        assert _pair_failures(app, username, ADDRESS) == expected


def test_a_sign_in_leaves_the_user_unthrottled(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    """Signing in again and again (more often than the free failures) never makes the owner wait: each sign-in
    takes its challenge's charge back (pair, address and username)."""
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        throttle_free_attempts=1,
        throttle_address_free_attempts=1,
        throttle_username_free_attempts=1,
        throttle_base_seconds=30.0,
        throttle_max_seconds=30.0,
    )
    username = unique_username()
    create_user(db_engine, username, templates=2)
    for _ in range(4):
        browser = at(app)
        assert browser.login(username, frames).status_code == 200, last_reason(db_engine, username)
    with app.app_context():
        log = context.failure_log()
        keys = log._keys(username, ADDRESS)
        assert [int(log.client.zcard(key)) for key in keys.values()] == [0, 0, 0]


def test_a_locked_address_is_refused_after_charged_challenges(make_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    """The lock counts challenges too: three unused challenges and the fourth is refused as LOCKED, told how
    long to wait, before any service is called."""
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, lockout_threshold=3, **NO_DELAYS)
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = at(app)
    browser.refresh_csrf()
    for _ in range(3):
        browser.challenge(username)
    calls = fakes.recognition.calls
    response = browser.login_with_password_in_capture(username, frames)
    assert response.status_code == 429 and response.get_json()["error"] == "locked"
    assert last_reason(db_engine, username) == "LOCKED" and fakes.recognition.calls == calls


# -- the admin calibration API --------------------------------------------------------------------------------


class DiagnosingLiveness(FakeLiveness):
    """Live, with per-frame flash measurements like the real service's."""

    def Check(self, request, context):  # type: ignore[no-untyped-def]
        response = super().Check(request, context)
        for index, _frame in enumerate(request.frames):
            diagnostics = response.frames.add(face_count=1)
            if index % 4 != 3:  # some frames unmeasured
                diagnostics.flash_expected_rgb = request.flash[index % len(request.flash)].rgb
                diagnostics.skin_rgb.extend([0.31, 0.22, 0.18])
                diagnostics.background_rgb.extend([0.05, 0.05, 0.06])
        response.planarity_residual = 0.25
        return response


@pytest.fixture
def calibration_app(make_app, fake_grpc):  # type: ignore[no-untyped-def]
    services = fake_grpc(liveness=DiagnosingLiveness(), recognition=FakeRecognition())
    app = make_app(liveness_target=services.address, recognition_target=services.address, flash_enabled=False)
    return app, services


def _calibrate(browser: Browser, frames: list[bytes], **options: Any):  # type: ignore[no-untyped-def]
    browser.refresh_csrf("/admin/flash")
    response = browser.post_json("/api/admin/flash/challenge", {})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json(), browser.submit(
        "/api/admin/flash/check", response.get_json()["nonce"], frames, **options
    )


def test_the_calibration_api_returns_liveness_diagnostics_only(calibration_app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app, services = calibration_app
    admin_name = unique_username("admin")
    admin = Browser(app.test_client())
    sign_in_directly(admin, create_user(db_engine, admin_name, role="admin"))
    page = admin.client.get("/admin/flash")
    assert page.status_code == 200 and page.mimetype == "text/html"
    recognition_calls = services.recognition.calls
    challenge, response = _calibrate(admin, frames, flash_start_ms=17)
    # A flash even with AUTH_FLASH off, and nothing to perform.
    assert challenge["actions"] == [] and 4 <= len(challenge["flash"]["steps"]) <= 6
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["live"] is True and body["reason"] == "LIVENESS_LIVE" and body["failed_checks"] == []
    assert body["flash"] == {
        "reflected": True,
        "score": pytest.approx(0.9),
        "threshold": pytest.approx(0.6),
        "face_gain": pytest.approx(0.1),
        "background_ratio": pytest.approx(0.1),
        "lag_ms": 60,
    }
    assert body["steps"] == challenge["flash"]["steps"] and body["flash_start_ms"] == 17
    assert [frame["time_ms"] for frame in body["frames"]] == [0, 167, 333, 500, 667, 833]
    assert body["frames"][0]["expected"] == challenge["flash"]["steps"][0]["colour"]
    assert body["frames"][0]["skin"] == pytest.approx([0.31, 0.22, 0.18])
    assert body["frames"][3] == {"time_ms": 500, "expected": None, "skin": None, "background": None}
    assert body["planarity_residual"] == pytest.approx(0.25)
    assert services.recognition.calls == recognition_calls  # liveness only
    row = audit_rows(db_engine, admin_name, "flash_calibration")[-1]
    assert (row.result, row.reason) == ("success", "LIVENESS_LIVE") and row.details["flash"]["lag_ms"] == 60
    assert admin.signed_in_as() == admin_name  # no sign-in, no rotation: still the same admin


def test_the_calibration_challenge_is_single_use_and_bound_to_its_admin(calibration_app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app, _services = calibration_app
    admin = Browser(app.test_client())
    sign_in_directly(admin, create_user(db_engine, unique_username("admin"), role="admin"))
    challenge, first = _calibrate(admin, frames)
    assert first.status_code == 200
    again = admin.submit("/api/admin/flash/check", challenge["nonce"], frames)
    assert again.status_code == 400 and again.get_json()["error"] == "challenge_invalid"
    # A login challenge is no calibration challenge (purposes are apart).
    admin.refresh_csrf("/admin/flash")
    nonce = admin.challenge(unique_username())["nonce"]
    wrong = admin.submit("/api/admin/flash/check", nonce, frames)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "challenge_invalid"


def test_the_calibration_api_refuses_non_admins_and_strangers(calibration_app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    app, services = calibration_app
    user = Browser(app.test_client())
    sign_in_directly(user, create_user(db_engine, unique_username()))
    user.refresh_csrf("/account")
    for path in ("/api/admin/flash/challenge", "/api/admin/flash/check"):
        response = user.post_json(path, {})
        assert response.status_code == 403 and response.get_json()["error"] == "forbidden"
    assert user.client.get("/admin/flash").status_code == 403
    stranger = Browser(app.test_client())
    stranger.refresh_csrf()
    for path in ("/api/admin/flash/challenge", "/api/admin/flash/check"):
        response = stranger.post_json(path, {})
        assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
    redirect = stranger.client.get("/admin/flash")
    assert redirect.status_code == 302 and "/login" in redirect.headers["Location"]
    assert services.liveness.calls == 0


def test_the_calibration_api_needs_the_csrf_token(calibration_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    app, _services = calibration_app
    admin = Browser(app.test_client())
    sign_in_directly(admin, create_user(db_engine, unique_username("admin"), role="admin"))
    admin.client.get("/admin/flash")
    response = admin.client.post("/api/admin/flash/challenge", json={})
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"
