"""The app under fuzz: real Postgres and Redis, stubbed face services, signed-in clients, the invariants."""

from __future__ import annotations

import functools
import io
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, update
from werkzeug.test import TestResponse

from faceauth.liveness.v1 import liveness_pb2
from faceauth.recognition.v1 import recognition_pb2

from .media import valid_images

PASSWORD = "correct horse battery staple"
MODEL_VERSION = "fuzz-model"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
#: Every response of the app carries these (the gateway replaces some of them; auth-web alone must send them).
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "X-Request-ID")
#: Limits high enough that the fuzzers test input handling, not the throttles (those have their own tests).
GENEROUS_LIMITS = {
    "AUTH_RATE_LIMIT_LOGIN_PER_ADDRESS": "1000000/minute",
    "AUTH_RATE_LIMIT_LOGIN_PER_USERNAME": "1000000/minute",
    "AUTH_RATE_LIMIT_REGISTER_PER_ADDRESS": "1000000/minute",
    "AUTH_RATE_LIMIT_ENROLL_PER_USER": "1000000/minute",
    "AUTH_LOCKOUT_THRESHOLD": "1000000",
    "AUTH_LOCKOUT_ADDRESS_THRESHOLD": "1000000",
    "AUTH_THROTTLE_FREE_ATTEMPTS": "1000000",
    "AUTH_THROTTLE_ADDRESS_FREE_ATTEMPTS": "1000000",
    "AUTH_THROTTLE_USERNAME_FREE_ATTEMPTS": "1000000",
}


class StubFaceServices:
    """Answers like healthy services that accept every capture (the gRPC side has its own fuzz tests)."""

    def _check(self, frames: Sequence[bytes], given: Any) -> liveness_pb2.CheckResponse:
        actions = given.actions
        flash = liveness_pb2.FlashResult(reflected=True, score=0.9, threshold=0.6) if given.flash else None
        return liveness_pb2.CheckResponse(
            flash=flash,
            live=True,
            reason=liveness_pb2.LIVENESS_REASON_LIVE,
            live_score=0.99,
            live_threshold=0.9,
            actions=[
                liveness_pb2.ActionResult(action=liveness_pb2.Action.Value(f"ACTION_{a}"), performed=True)
                for a in actions
            ],
            model_version="fuzz-liveness",
        )

    def check(self, frames: Sequence[bytes], given: Any):  # type: ignore[no-untyped-def]
        return self._check(frames, given)

    def check_and_verify(self, frames, given, templates):  # type: ignore[no-untyped-def]
        matches = [recognition_pb2.FrameMatch(distance=0.2, matched=True, compared=True) for _ in frames]
        verify = recognition_pb2.VerifyResponse(
            match=True,
            reason=recognition_pb2.VERIFY_REASON_MATCH,
            frames=matches,
            matched_frames=len(frames),
            compared_frames=len(frames),
            threshold=0.55,
            min_matched_frames=2,
            model_version=MODEL_VERSION,
        )
        return self._check(frames, given), verify

    def check_and_encode(self, frames, given):  # type: ignore[no-untyped-def]
        faces = [
            recognition_pb2.FaceObservation(
                status=recognition_pb2.FACE_STATUS_OK,
                quality=0.9,
                detection_score=1.0,
                embedding=[0.05 + 0.0001 * index] * 128,
            )
            for index, _ in enumerate(frames)
        ]
        encoded = recognition_pb2.EncodeResponse(faces=faces, model_version=MODEL_VERSION, same_person=True)
        return self._check(frames, given), encoded

    def serving(self, service: str) -> bool:
        return True

    def close(self) -> None:
        pass


def build_app(database_url: str, redis_prefix: str) -> Flask:
    from auth_web import create_app
    from auth_web.config import Settings

    env = {
        "FACEAUTH_SECRET_KEY": "fuzz-secret-key-0123456789abcdefghijklmnop",
        "DATABASE_URL": database_url,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "AUTH_REDIS_PREFIX": redis_prefix,
        "AUTH_CHALLENGE_ACTIONS": "BLINK",
        "AUTH_CAPTURE_COUNTDOWN_SECONDS": "0",
        "AUTH_PROXY_COUNT": "1",  # the test client's 127.0.0.1 is the trusted proxy: its X-Forwarded-* count
        **GENEROUS_LIMITS,
    }
    app = create_app(Settings.from_env(env), face_services=StubFaceServices())  # type: ignore[arg-type]
    app.config["TESTING"] = True
    return app


@functools.cache
def _documented_statuses() -> dict[tuple[str, str], set[int]]:
    from auth_web.blueprints.api import openapi_document

    spec = json.loads(openapi_document())
    return {
        (path, method.upper()): {int(status) for status in operation["responses"]}
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def check_response(response: TestResponse, path: str, method: str = "") -> None:
    """The tier's invariants for every answer, and that /api/openapi.json describes what the app answered."""
    status = response.status_code
    body = response.get_data()
    assert status < 500, f"{status} for {path}: {body[:300]!r}"
    assert b"Traceback" not in body, path
    for name in SECURITY_HEADERS:
        assert name in response.headers, (name, path)
    if status >= 400 and path.startswith("/api/"):
        payload = json.loads(body)
        assert payload["ok"] is False and payload["error"] and payload["message"], payload
    documented = _documented_statuses().get((path, method))
    if documented is not None and not (status == 400 and b'"bad_host"' in body):
        assert status in documented, f"{method} {path} answered {status}, not in /api/openapi.json: {body[:200]!r}"


@dataclass
class Browser:
    client: FlaskClient
    csrf: str = ""
    username: str = ""

    def refresh_csrf(self, path: str = "/login") -> str:
        page = self.client.get(path)
        match = CSRF_META.search(page.get_data(as_text=True))
        assert match, f"no CSRF token on {path} ({page.status_code})"
        self.csrf = match.group(1)
        return self.csrf

    def challenge(self, username: str) -> TestResponse:
        return self.client.post("/api/login/challenge", json={"username": username}, headers={"X-CSRFToken": self.csrf})

    def submit(self, path: str, fields: dict[str, Any], frames: Sequence[bytes], **options: Any) -> TestResponse:
        data: dict[str, Any] = dict(fields)
        data["frames"] = [(io.BytesIO(frame), f"frame-{i}.jpg", "image/jpeg") for i, frame in enumerate(frames)]
        headers = {"X-CSRFToken": self.csrf, **options.pop("headers", {})}
        return self.client.post(path, data=data, headers=headers, content_type="multipart/form-data", **options)


def good_frames(count: int = 6) -> list[bytes]:
    images = [image for image in valid_images() if image[:2] == b"\xff\xd8"]
    return [images[i % len(images)] for i in range(count)]


def good_times(count: int = 6) -> str:
    return json.dumps([index * 100 for index in range(count)])


def age_challenge(app: Flask, nonce: str, seconds: float) -> None:
    """Move a stored challenge's issue time back, as if the page had taken ``seconds`` to capture."""
    from auth_web import context

    with app.app_context():
        store = context.challenges()
        raw = store.client.get(store.prefix + nonce)
        if raw is not None:
            payload = json.loads(raw)
            payload["issued_at"] -= seconds
            store.client.set(store.prefix + nonce, json.dumps(payload), keepttl=True)


@dataclass
class Accounts:
    """A user (enrolled, with a password) and an admin, each with a signed-in browser; more made on demand."""

    app: Flask
    database_url: str
    victim: str = field(init=False)
    user: Browser = field(init=False)
    admin: Browser = field(init=False)
    fixed_ids: set[int] = field(default_factory=set)
    #: Roles whose session a fuzzed request may have ended (logout, revoke, an admin action): checked before use.
    dirty: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # The victim is the account the login fuzzer aims at (enrolled, known password); nobody fuzzes as it.
        self.victim = self.register("fuzzvictim", enrolled=True).username
        self.user = self.register("fuzzuser", enrolled=True)
        self.admin = self.register("fuzzadmin", admin=True)
        engine = create_engine(self.database_url)
        from auth_web.models import User

        with engine.begin() as connection:
            self.fixed_ids = {row.id for row in connection.execute(User.__table__.select()).all()}
        engine.dispose()

    def register(self, stem: str, *, enrolled: bool = False, admin: bool = False) -> Browser:
        browser = Browser(self.app.test_client())
        browser.refresh_csrf("/register")
        browser.username = f"{stem}{secrets.token_hex(3)}"
        response = browser.client.post(
            "/register",
            data={"username": browser.username, "password": PASSWORD, "confirm": PASSWORD, "csrf_token": browser.csrf},
        )
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        browser.refresh_csrf("/account")
        if enrolled:
            enroll = self.enroll(browser)
            assert enroll.status_code == 200, enroll.get_json()
        if admin:
            from auth_web.models import User

            engine = create_engine(self.database_url)
            with engine.begin() as connection:
                connection.execute(update(User).where(User.username == browser.username).values(role="admin"))
            engine.dispose()
        return browser

    def enroll(self, browser: Browser) -> TestResponse:
        challenge = browser.client.post("/api/enroll/challenge", headers={"X-CSRFToken": browser.csrf})
        assert challenge.status_code == 200, challenge.get_json()
        nonce = challenge.get_json()["nonce"]
        age_challenge(self.app, nonce, 5.0)  # the page's placement wait, flash and capture (auth-web's time limit)
        fields = {"nonce": nonce, "frame_times_ms": good_times(), "flash_start_ms": "0"}
        return browser.submit("/api/enroll", fields, good_frames())

    def signed_in(self, role: str) -> Browser:
        """The role's browser; a new account when a fuzzed request (logout, disable, delete) ended its session."""
        browser: Browser = getattr(self, role)
        if role in self.dirty and browser.client.get("/account").status_code != 200:
            browser = self.register(f"fuzz{role}", enrolled=role == "user", admin=role == "admin")
            setattr(self, role, browser)
        self.dirty.discard(role)
        return browser

    def used(self, role: str, method: str, path: str) -> None:
        if method not in ("GET", "HEAD", "OPTIONS") and path.startswith(("/logout", "/admin/users/", "/account/")):
            self.dirty.update({role, "user", "admin"} - {"anonymous"})
