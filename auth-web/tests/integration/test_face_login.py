"""The real thing: register → enroll → login with the real liveness and recognition services and real video frames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from auth_web.models import FaceTemplate, User

from .conftest import (
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
    response = browser.enroll(clip_a_enroll)
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
    nonce = browser.challenge(enrolled_a.username.upper())["nonce"]  # usernames are case-insensitive
    response = browser.submit("/api/login", nonce, clip_a_login, PASSWORD)
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
    assert row.reason == "VERIFY_NO_MATCH", row.details
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
