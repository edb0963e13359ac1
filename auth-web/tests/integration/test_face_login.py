"""The real thing: register → enroll → login with the real liveness and recognition services and real video frames."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from auth_web.models import FaceTemplate, User

from .conftest import (
    GENUINE_TRIES,
    PASSWORD,
    Browser,
    Clip,
    RealServices,
    audit_rows,
    last_reason,
    unique_username,
)
from .test_template_encryption import assert_no_decodable_vector, raw_templates


@dataclass
class Enrolled:
    app: Flask
    username: str
    user_id: int


@pytest.fixture(scope="module")
def real_app(base_settings, real_services: RealServices) -> Flask:  # type: ignore[no-untyped-def]
    settings = base_settings.replace(
        redis_prefix=base_settings.redis_prefix + "real:",
        liveness_target=real_services.liveness,
        recognition_target=real_services.recognition,
    )
    from auth_web import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def enrolled_a(real_app: Flask, db_engine, clip_a_enroll: Clip) -> Iterator[Enrolled]:  # type: ignore[no-untyped-def]
    """Person A registers in the browser and enrolls with real frames (done once for the module)."""
    browser = Browser(real_app.test_client())
    username = unique_username("alice")
    response = browser.register(username)
    assert response.status_code == 302 and response.headers["Location"].endswith("/enroll")
    response = browser.enroll_genuine(clip_a_enroll)
    assert response.status_code == 200, (response.get_json(), audit_rows(db_engine, username, "enroll")[-1].details)
    body = response.get_json()
    assert body["ok"] and body["templates"] >= 3
    with Session(db_engine) as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        yield Enrolled(real_app, username, user.id)


def test_enrollment_stores_templates_not_images(enrolled_a: Enrolled, db_engine, database_url: str) -> None:  # type: ignore[no-untyped-def]
    with Session(db_engine) as session:
        templates = session.scalars(select(FaceTemplate).where(FaceTemplate.user_id == enrolled_a.user_id)).all()
    assert 3 <= len(templates) <= 5
    cipher = enrolled_a.app.config["FACEAUTH_SETTINGS"].template_cipher
    vectors = [template.vector(cipher) for template in templates]
    for template in templates:
        # An encrypted float32 embedding (nonce + 512 bytes + tag), never an image.
        assert len(template.embedding) == 12 + 128 * 4 + 16 and template.key_id == cipher.current_key_id
        assert template.model_version and 0 < template.quality <= 1
    # The real enrolled embeddings cannot be read out of the table (test_template_encryption.py has the rest).
    assert all(len(vector) == 128 for vector in vectors)
    for raw, _key_id in raw_templates(database_url, enrolled_a.user_id):
        assert_no_decodable_vector(raw, vectors)
    assert last_reason(db_engine, enrolled_a.username, "enroll") == "OK"


def test_register_enroll_login_success(enrolled_a: Enrolled, clip_a_login: Clip, db_engine, redis_client) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(enrolled_a.app.test_client())
    browser.refresh_csrf()
    anonymous_cookie = browser.client.get_cookie("faceauth_session")
    assert anonymous_cookie is not None
    for _ in range(GENUINE_TRIES):
        nonce = browser.challenge(enrolled_a.username.upper())["nonce"]  # usernames are case-insensitive
        response = browser.submit("/api/login", nonce, clip_a_login, PASSWORD)
        if response.status_code == 200:
            break
    failure = audit_rows(db_engine, enrolled_a.username.upper())[-1]
    assert response.status_code == 200, (
        failure.reason,
        failure.matched_frames,
        failure.details["frame_distances"],
        failure.details,
    )
    assert response.get_json()["redirect"] == "/account"
    # The session id was rotated at login, and the new one is HttpOnly + SameSite=Lax.
    cookie = browser.client.get_cookie("faceauth_session")
    assert cookie is not None and cookie.value != anonymous_cookie.value
    assert cookie.http_only and cookie.same_site == "Lax"
    assert browser.signed_in_as() == enrolled_a.username
    row = audit_rows(db_engine, enrolled_a.username.upper())[-1]
    assert (row.result, row.reason, row.user_id) == ("success", "OK", enrolled_a.user_id)
    assert row.live_score is not None and row.match_distance is not None and row.matched_frames >= 2
    prefix = enrolled_a.app.config["FACEAUTH_SETTINGS"].redis_prefix
    assert redis_client.scard(f"{prefix}user_sessions:{enrolled_a.user_id}") >= 1


def test_wrong_face_is_refused(enrolled_a: Enrolled, clip_b: Clip, db_engine) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(enrolled_a.app.test_client())
    response = browser.login(enrolled_a.username, clip_b)
    assert response.status_code == 401
    assert response.get_json()["error"] == "login_failed"
    assert browser.signed_in_as() is None
    row = audit_rows(db_engine, enrolled_a.username)[-1]
    assert row.result == "failure"
    # Recognition's verdict (the audit's reason names liveness first when it refused too).
    assert row.details["verify_reason"] == "VERIFY_NO_MATCH", row.details
    assert row.match_distance is not None and row.match_distance > 0.5


def test_static_frames_are_refused(enrolled_a: Enrolled, frames_a_static: list[bytes], db_engine) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(enrolled_a.app.test_client())
    response = browser.login(enrolled_a.username, frames_a_static)
    assert response.status_code == 401
    assert browser.signed_in_as() is None
    assert last_reason(db_engine, enrolled_a.username) == "LIVENESS_STATIC_CAPTURE"


def test_a_photo_cannot_be_enrolled(real_app: Flask, frames_a_static: list[bytes], db_engine) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(real_app.test_client())
    username = unique_username("photo")
    assert browser.register(username).status_code == 302
    response = browser.enroll(frames_a_static)
    assert response.status_code == 422
    assert response.get_json()["error"] == "enrollment_failed"
    with Session(db_engine) as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        count = session.scalar(select(func.count(FaceTemplate.id)).where(FaceTemplate.user_id == user_id))
    assert count == 0
    assert last_reason(db_engine, username, "enroll") == "LIVENESS_STATIC_CAPTURE"


def test_readyz_with_everything_up(real_app: Flask) -> None:
    response = real_app.test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"] == {
        "database": "ok",
        "redis": "ok",
        "liveness": "ok",
        "recognition": "ok",
    }


# -- the screen flash, with the real services -------------------------------------------------------------------


def _different_challenge(browser: Browser, username: str, other: dict) -> dict:  # type: ignore[type-arg]
    """A new challenge whose colour differs from ``other``'s at every step (a replay's best luck aside)."""
    colours = [step["colour"] for step in other["flash"]["steps"]]
    for _ in range(30):
        body = browser.challenge(username)
        if all(step["colour"] != colours[i] for i, step in enumerate(body["flash"]["steps"][: len(colours)])):
            return body
    raise AssertionError("no challenge with a different sequence in 30 draws")


def test_a_capture_recorded_for_another_challenges_colours_is_refused(
    enrolled_a: Enrolled, clip_a_login: Clip, db_engine
) -> None:  # type: ignore[no-untyped-def]
    """The replay of a genuine capture (the right face, lit by a screen — but by an earlier challenge's colours):
    liveness finds the face does not reflect this challenge's sequence."""
    browser = Browser(enrolled_a.app.test_client())
    browser.refresh_csrf()
    recorded_for = browser.challenge(enrolled_a.username)
    recording = browser.shoot(recorded_for["nonce"], clip_a_login)
    replayed_to = _different_challenge(browser, enrolled_a.username, recorded_for)
    response = browser.submit("/api/login", replayed_to["nonce"], recording, PASSWORD)
    assert response.status_code == 401 and browser.signed_in_as() is None
    row = audit_rows(db_engine, enrolled_a.username)[-1]
    # Other checks may object too (the first failed one is the reason): the flash check must be among them.
    assert "LIVENESS_FLASH_NOT_REFLECTED" in row.details["liveness_failed_checks"], (row.reason, row.details)
    assert row.details["flash"]["reflected"] is False


def test_a_face_the_screen_does_not_light_is_refused(enrolled_a: Enrolled, clip_a_login: Clip, db_engine) -> None:  # type: ignore[no-untyped-def]
    """A pre-recorded clip or injected frames: the right face, moving, blinking — and no light from the page."""
    browser = Browser(enrolled_a.app.test_client())
    browser.refresh_csrf()
    nonce = browser.challenge(enrolled_a.username)["nonce"]
    response = browser.submit("/api/login", nonce, browser.shoot(nonce, clip_a_login, reflect=False), PASSWORD)
    assert response.status_code == 401 and browser.signed_in_as() is None
    row = audit_rows(db_engine, enrolled_a.username)[-1]
    assert "LIVENESS_FLASH_NOT_REFLECTED" in row.details["liveness_failed_checks"], (row.reason, row.details)


def test_the_login_audit_keeps_the_flash_measurements(enrolled_a: Enrolled, db_engine) -> None:  # type: ignore[no-untyped-def]
    # test_register_enroll_login_success claims the name in capitals (names compare case-insensitively).
    rows = [row for row in audit_rows(db_engine, enrolled_a.username.upper()) if row.reason == "OK"]
    assert rows, "test_register_enroll_login_success signs in first"
    flash = rows[-1].details["flash"]
    assert flash["reflected"] is True and flash["score"] >= flash["threshold"]
    assert set(flash) == {"reflected", "score", "threshold", "face_gain", "background_ratio", "lag_ms"}
    enrolled = audit_rows(db_engine, enrolled_a.username, "enroll")[-1]
    assert enrolled.details["flash"]["reflected"] is True


def test_the_admin_calibration_api_returns_the_flash_diagnostics(
    real_app: Flask, clip_a_login: Clip, db_engine
) -> None:  # type: ignore[no-untyped-def]
    from .conftest import create_user, sign_in_directly

    admin_name = unique_username("admin")
    admin = Browser(real_app.test_client())
    sign_in_directly(admin, create_user(db_engine, admin_name, role="admin"))
    admin.refresh_csrf("/admin/flash")
    challenge = admin.post_json("/api/admin/flash/challenge", {}).get_json()
    assert challenge["actions"] == []
    response = admin.submit("/api/admin/flash/check", challenge["nonce"], clip_a_login)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["steps"] == challenge["flash"]["steps"] and body["flash_start_ms"] == 0
    assert body["flash"] is not None and 0.0 <= body["flash"]["score"] <= 1.0 and body["flash"]["threshold"] > 0
    frames = body["frames"]
    assert len(frames) == challenge["capture"]["frames"]
    assert [frame["time_ms"] for frame in frames] == sorted(frame["time_ms"] for frame in frames)
    measured = [frame for frame in frames if frame["skin"] is not None]
    assert len(measured) >= len(frames) // 2
    assert all(len(frame["skin"]) == 3 and len(frame["background"]) == 3 for frame in measured)
    # The colour expected on the face after the camera's lag (a blend where a frame spans two steps).
    assert all(re.fullmatch(r"#[0-9a-f]{6}", frame["expected"]) for frame in measured if frame["expected"])
    assert any(frame["expected"] in {step["colour"] for step in body["steps"]} for frame in measured)
    assert audit_rows(db_engine, admin_name, "flash_calibration")[-1].details["flash"] == body["flash"]


def test_with_the_flash_off_face_login_works_end_to_end(
    base_settings, real_services: RealServices, liveness_without_flash: str, clip_a_enroll: Clip, clip_a_login: Clip
) -> None:  # type: ignore[no-untyped-def]
    """AUTH_FLASH=false with LIVENESS_CHECKS lacking `flash` (for photosensitive users): no sequence is issued or
    sent, and a plain capture enrolls and signs in."""
    from auth_web import create_app

    app = create_app(
        base_settings.replace(
            redis_prefix=base_settings.redis_prefix + "noflash:",
            liveness_target=liveness_without_flash,
            recognition_target=real_services.recognition,
            flash_enabled=False,
        )
    )
    app.config["TESTING"] = True
    browser = Browser(app.test_client())
    username = unique_username("noflash")
    assert browser.register(username).status_code == 302
    response = browser.enroll(clip_a_enroll)
    assert response.status_code == 200, response.get_json()
    login = Browser(app.test_client())
    login.refresh_csrf()
    body = login.challenge(username)
    assert body["flash"] is None
    response = login.submit("/api/login", body["nonce"], clip_a_login, PASSWORD)
    assert response.status_code == 200 and login.signed_in_as() == username
