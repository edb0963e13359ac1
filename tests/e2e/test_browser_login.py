"""A person in front of a webcam, in a real browser, against the whole stack (gateway → auth-web → services).

Each scenario asserts what the person sees on the page and what Postgres (audit log, templates) and Redis
(sessions, challenges) hold afterwards, and saves a screenshot of the final page under test-output/e2e/.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy.engine import Engine

from auth_web.errors import UNAVAILABLE_MESSAGE
from auth_web.login_flow import FACE_ADVICE
from auth_web.models import AuditEvent

from .browser import Browser
from .conftest import (
    PASSWORD,
    STACK_SETTINGS,
    PersonA,
    account_with_a_face,
    audit_events,
    stored_session,
    user_session_count,
)
from .stack import Stack


def refused(browser: Browser, stack: Stack, db: Engine, username: str, before: int) -> tuple[str, list[AuditEvent]]:
    """Log in, expect a refusal; returns the status text and the new audit events."""
    kind, message = browser.login(stack.base_url, username, PASSWORD)
    events = audit_events(db, username)[before:]
    assert kind == "error", (message, [(e.result, e.reason) for e in events])
    return message, events


def assert_still_on_login_page(browser: Browser) -> None:
    time.sleep(1.0)  # a success would redirect 0.6 s after the verdict
    assert browser.path().startswith("/login")
    assert browser.session_cookie() is None or "Sign in" in browser.text("header nav")


def test_1_register_enroll_logout_login(
    person_a: PersonA,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    redis_client: redis.Redis,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    # Enrolled (by the person_a fixture): the dashboard says so.
    enrolled = person_a.browser
    assert enrolled.text("main h1") == f"Hello, {person_a.username}"
    assert enrolled.text("#face-heading + p .badge") == "Enrolled"
    # Registration signed A in, so the last sign-in is a time, and the session names the browser, not its UA string.
    assert enrolled.text(".facts dt:nth-of-type(4) + dd").endswith(" UTC")
    assert "Chrome on Linux" in enrolled.text("#sessions-heading + .table-wrap tbody")
    enrolled.screenshot(output_dir / "1a_dashboard_after_enrollment.png")
    cookie = enrolled.session_cookie()
    assert cookie is not None
    stored = stored_session(redis_client, stack, cookie["value"])
    assert stored is not None and stored.user_id == person_a.user_id and stored.listed_for_user

    # Sign out: back on the login page, and the server-side session is gone.
    enrolled.sign_out()
    assert "You are signed out." in enrolled.page_text()
    assert stored_session(redis_client, stack, cookie["value"]) is None

    # Sign in again with A's face (another stretch of the video) and the right password.
    before = len(audit_events(db, person_a.username))
    person = browser("a_login")
    kind, message = person.login(stack.base_url, person_a.username, PASSWORD)
    events = audit_events(db, person_a.username)[before:]
    assert kind == "ok", (message, [(e.reason, e.details) for e in events], stack.log_tail(3000))
    assert message == f"Welcome, {person_a.username}."
    person.wait_for_path("/account")
    assert person.text("main h1") == f"Hello, {person_a.username}"
    assert "This device" in person.page_text()
    person.screenshot(output_dir / "1b_dashboard_after_login.png")

    # The audit log has the success, with the scores that led to it.
    assert [(e.result, e.reason, e.user_id) for e in events] == [("success", "OK", person_a.user_id)]
    success = events[0]
    assert success.live_score is not None and success.match_distance is not None
    assert success.match_distance <= success.details["threshold"]
    assert success.matched_frames is not None and success.matched_frames >= 2
    assert success.user_agent and "Chrome" in success.user_agent
    # The session exists in Redis, belongs to A, and its cookie is HttpOnly and Secure behind TLS.
    cookie = person.session_cookie()
    assert cookie is not None and cookie["httpOnly"]
    assert cookie["secure"] == stack.use_gateway
    stored = stored_session(redis_client, stack, cookie["value"])
    assert stored is not None and stored.user_id == person_a.user_id and stored.listed_for_user


def test_2_someone_else_is_refused(
    person_a: PersonA,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    redis_client: redis.Redis,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    sessions_before = user_session_count(redis_client, stack, person_a.user_id)
    before = len(audit_events(db, person_a.username))
    person_b = browser("b_login")
    message, events = refused(person_b, stack, db, person_a.username, before)
    # The password was right (checked before the camera), so the page says what went wrong with the face.
    assert message == FACE_ADVICE["VERIFY_NO_MATCH"]
    assert_still_on_login_page(person_b)
    person_b.screenshot(output_dir / "2_wrong_face_refused.png")
    # The audit log says why: B was live (the blink was seen) but is not A.
    assert [(e.result, e.reason, e.user_id) for e in events] == [("failure", "VERIFY_NO_MATCH", person_a.user_id)]
    assert events[0].details["liveness_reason"] == "LIVENESS_LIVE"
    assert events[0].match_distance is not None and events[0].match_distance > events[0].details["threshold"]
    assert user_session_count(redis_client, stack, person_a.user_id) == sessions_before


def test_3_a_still_picture_is_refused(
    person_a: PersonA,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    redis_client: redis.Redis,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    sessions_before = user_session_count(redis_client, stack, person_a.user_id)
    before = len(audit_events(db, person_a.username))
    # Injected into the browser as a virtual camera (media.py): a still that does not see the screen either. (A
    # print held to a real camera would reflect the flash; relit, the frames differ, and it is refused for the
    # missing blink instead.)
    photo = browser("a_still", reflection=None)
    message, events = refused(photo, stack, db, person_a.username, before)
    assert message == FACE_ADVICE["LIVENESS_STATIC_CAPTURE"]
    assert_still_on_login_page(photo)
    photo.screenshot(output_dir / "3_still_picture_refused.png")
    assert [(e.result, e.reason) for e in events] == [("failure", "LIVENESS_STATIC_CAPTURE")]
    assert user_session_count(redis_client, stack, person_a.user_id) == sessions_before


@pytest.fixture
def challenge_turn_left(stack: Stack) -> Iterator[None]:
    """auth-web restarted so that every challenge asks for a turn to the left; restored afterwards."""
    stack.restart_auth_web(AUTH_CHALLENGE_ACTIONS="TURN_LEFT")
    try:
        yield
    finally:
        stack.restart_auth_web(AUTH_CHALLENGE_ACTIONS=STACK_SETTINGS["AUTH_CHALLENGE_ACTIONS"])


def test_4_the_challenge_is_not_met(
    person_a: PersonA,
    challenge_turn_left: None,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    redis_client: redis.Redis,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    sessions_before = user_session_count(redis_client, stack, person_a.user_id)
    before = len(audit_events(db, person_a.username))
    person = browser("a_login")  # A blinks but never turns to the left
    message, events = refused(person, stack, db, person_a.username, before)
    assert message == FACE_ADVICE["LIVENESS_CHALLENGE_NOT_MET"]
    assert_still_on_login_page(person)
    person.screenshot(output_dir / "4_challenge_not_met.png")
    assert [(e.result, e.reason) for e in events] == [("failure", "LIVENESS_CHALLENGE_NOT_MET")]
    assert events[0].details["actions_performed"] == [False]
    assert user_session_count(redis_client, stack, person_a.user_id) == sessions_before


def test_5_camera_permission_denied(
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    # The password is checked before the camera starts, so the camera problem shows after a right one.
    username = account_with_a_face(db)
    person = browser("a_login", grant_camera=False)
    kind, message = person.login(stack.base_url, username, PASSWORD)
    assert kind == "error"
    assert message == "Camera access is blocked, so we cannot see your face."
    help_text = person.text("#capture-help")
    assert "How to fix it" in help_text
    assert 'Set Camera to "Allow" for this site.' in help_text
    assert "Reload this page" in help_text
    # The stage says what is wrong instead of "Your camera turns on when you start.", with no oval over it.
    assert person.text("#capture-placeholder") == "Camera access is blocked"
    assert not person.overlay_painted()
    person.screenshot(output_dir / "5_camera_blocked.png")
    # No capture reached the face step: nothing was audited.
    assert audit_events(db, username) == []


# How the page answers the other camera problems. Chromium's fake camera always exists and works, so the page's
# getUserMedia (or its secure-context flag) is replaced by one that fails the way a real browser does.
CAMERA_PROBLEMS = {
    "no_camera": (
        "navigator.mediaDevices.getUserMedia = function () {"
        " return Promise.reject(new DOMException('Requested device not found', 'NotFoundError')); };",
        "No camera found",
        "No camera was found on this device.",
    ),
    "camera_busy": (
        "navigator.mediaDevices.getUserMedia = function () {"
        " return Promise.reject(new DOMException('Could not start video source', 'NotReadableError')); };",
        "The camera is busy",
        "Your camera is in use by another application or could not be started.",
    ),
    "insecure_page": (
        "Object.defineProperty(window, 'isSecureContext', { get: function () { return false; } });",
        "The camera needs a secure connection",
        "The camera is only available on a secure (https://) page.",
    ),
}


def test_5b_other_camera_problems(
    stack: Stack,
    db: Engine,
    browser: Callable[..., Browser],
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    person = browser(None)
    for name, (break_camera, title, message) in CAMERA_PROBLEMS.items():
        person.open(stack.base_url, "/login")
        assert person.text("#capture-placeholder") == "Your camera turns on when you start."
        person.driver.execute_script(break_camera)
        person.fill("#username", account_with_a_face(db))  # a right password: the camera comes next
        person.fill("#password", PASSWORD)
        assert person.capture() == ("error", message), name
        assert person.text("#capture-placeholder") == title, name
        assert "How to fix it" in person.text("#capture-help"), name
        assert not person.overlay_painted(), name
        person.screenshot(output_dir / f"5b_{name}.png")


def test_6_recognition_down_then_back(
    person_a: PersonA,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    redis_client: redis.Redis,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    sessions_before = user_session_count(redis_client, stack, person_a.user_id)
    person = browser("a_login")
    person.open(stack.base_url, "/login")  # the page is open when the service goes away

    assert stack.stop_service("recognition") == 0  # a graceful stop
    try:
        before = len(audit_events(db, person_a.username))
        kind, message = person.login(stack.base_url, person_a.username, PASSWORD)
        events = audit_events(db, person_a.username)[before:]
        assert kind == "error", message
        assert message == UNAVAILABLE_MESSAGE
        assert "temporarily unavailable" in message
        assert_still_on_login_page(person)
        person.screenshot(output_dir / "6a_recognition_down.png")
        assert [(e.result, e.reason, e.details.get("service")) for e in events] == [
            ("error", "SERVICE_UNAVAILABLE", "recognition")
        ]
        assert user_session_count(redis_client, stack, person_a.user_id) == sessions_before
        # /readyz (through the gateway) says which dependency is missing.
        assert stack.readiness() == (
            503,
            {"database": "ok", "redis": "ok", "liveness": "ok", "recognition": "unavailable"},
        )
    finally:
        stack.start_service("recognition")

    # Back: every auth-web worker's channel reconnects (gRPC backs off while the service is away).
    deadline = time.monotonic() + 60
    streak = 0
    while streak < 6 and time.monotonic() < deadline:
        streak = streak + 1 if stack.ready() else 0
        time.sleep(0.3)
    assert streak >= 6, "the stack did not become ready again after recognition came back"

    # The same page, a second try: in.
    before = len(audit_events(db, person_a.username))
    kind, message = person.capture()
    events = audit_events(db, person_a.username)[before:]
    assert kind == "ok", (message, [(e.reason, e.details) for e in events])
    person.wait_for_path("/account")
    assert person.text("main h1") == f"Hello, {person_a.username}"
    person.screenshot(output_dir / "6b_login_after_restart.png")
    assert [(e.result, e.reason) for e in events] == [("success", "OK")]
    assert user_session_count(redis_client, stack, person_a.user_id) == sessions_before + 1
