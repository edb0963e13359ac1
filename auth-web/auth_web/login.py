"""The login flow: challenge → capture → password (when required) → liveness ∥ recognition → decision → session.

The browser learns accepted or refused; the audit log learns why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import current_app, session
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from auth_web import audit
from auth_web import decision as reasons
from auth_web import metrics as auth_metrics
from auth_web.accounts import (
    LockoutPolicy,
    LockoutState,
    ValidationError,
    after_failure,
    after_success,
    hash_password,
    is_locked,
    needs_rehash,
    normalize_username,
    validate_username,
    verify_password,
)
from auth_web.auth_helpers import sign_in
from auth_web.challenges import PURPOSE_LOGIN, ChallengeStore, random_actions
from auth_web.config import Settings
from auth_web.db import db
from auth_web.decision import Decision, decide_login
from auth_web.face_services import FaceServices, ServiceUnavailable
from auth_web.models import User, utcnow
from auth_web.uploads import CaptureError, parse_frame_times, read_frames
from faceauth_common.imaging import ImageLimits

GENERIC_FAILURE = (
    "We couldn't sign you in. Check your username and password, keep your face inside the oval in good light, "
    "follow the prompt, and try again."
)
CHALLENGE_EXPIRED = "This sign-in attempt expired or was already used. Please start again."
PROMPTS = {
    "BLINK": "Blink your eyes",
    "TURN_LEFT": "Turn your head to your left",
    "TURN_RIGHT": "Turn your head to your right",
}


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]


def settings() -> Settings:
    return current_app.config["FACEAUTH_SETTINGS"]


def capture_config(config: Settings) -> dict[str, Any]:
    capture = config.capture
    return {
        "frames": capture.frames,
        "fps": capture.fps,
        "width": capture.width,
        "height": capture.height,
        "jpeg_quality": capture.jpeg_quality,
        "countdown_seconds": capture.countdown_seconds,
    }


def challenge_body(nonce: str, actions: tuple[str, ...], config: Settings) -> dict[str, Any]:
    return {
        "ok": True,
        "nonce": nonce,
        "actions": list(actions),
        "prompts": [PROMPTS[a] for a in actions],
        "expires_in": config.challenge_ttl_seconds,
        "capture": capture_config(config),
        "password_required": config.password_required,
    }


def issue_challenge(username_raw: object) -> Outcome:
    """A challenge for any well-formed username: whether the account exists is not revealed here."""
    config = settings()
    # Every account's name follows the username rules (registration, CLI and import all check them), so a name
    # that breaks them is refused as input without revealing anything; that also keeps NUL bytes, control
    # characters and surrogates out of Redis, Postgres and the audit log.
    if not isinstance(username_raw, str) or not username_raw.strip():
        return Outcome(400, {"ok": False, "error": "bad_request", "message": "Enter your username."})
    try:
        username = validate_username(username_raw)
    except ValidationError as error:
        return Outcome(400, {"ok": False, "error": "bad_username", "message": str(error)})
    store: ChallengeStore = current_app.extensions["faceauth_challenges"]
    session["challenge_bound"] = True  # make sure this browser session is stored, so the binding holds
    actions = random_actions(config.challenge_actions, config.challenge_length)
    challenge = store.issue(PURPOSE_LOGIN, actions, session.hash, username=username)  # type: ignore[attr-defined]
    return Outcome(200, challenge_body(challenge.nonce, challenge.actions, config))


def _record(
    result: str,
    reason: str,
    *,
    user: User | None,
    claimed: str,
    outcome: Decision | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    audit.record(
        "login",
        result,
        reason,
        user_id=user.id if user is not None else None,
        claimed_username=claimed,
        live_score=outcome.live_score if outcome else None,
        match_distance=outcome.match_distance if outcome else None,
        matched_frames=outcome.matched_frames if outcome else None,
        details={**(outcome.details if outcome else {}), **(details or {})} or None,
    )


def _refuse(
    reason: str, *, user: User | None, claimed: str, outcome: Decision | None = None, count_failure: bool = True
) -> Outcome:
    details: dict[str, Any] = {}
    if user is not None and count_failure:
        config = settings()
        policy = LockoutPolicy(config.lockout_threshold, config.lockout_base_seconds, config.lockout_max_seconds)
        state = after_failure(
            LockoutState(user.failed_attempts, user.lockout_count, user.locked_until), policy, utcnow()
        )
        if state.lockout_count > user.lockout_count:
            auth_metrics.metrics().lockouts.inc()
            details["locked_until"] = state.locked_until.isoformat() if state.locked_until else None
        user.failed_attempts, user.lockout_count, user.locked_until = (
            state.failed_attempts,
            state.lockout_count,
            state.locked_until,
        )
        db().commit()
    _record(audit.FAILURE, reason, user=user, claimed=claimed, outcome=outcome, details=details)
    return Outcome(401, {"ok": False, "error": "login_failed", "message": GENERIC_FAILURE})


def attempt(nonce: str, password: str, files: list[FileStorage], frame_times_raw: str | None) -> Outcome:
    config = settings()
    store: ChallengeStore = current_app.extensions["faceauth_challenges"]
    services: FaceServices = current_app.extensions["faceauth_services"]

    challenge, invalid = store.consume(nonce, PURPOSE_LOGIN, session.hash)  # type: ignore[attr-defined]
    if challenge is None:
        _record(audit.FAILURE, invalid, user=None, claimed="")
        return Outcome(400, {"ok": False, "error": "challenge_invalid", "message": CHALLENGE_EXPIRED})
    claimed = challenge.username
    try:
        limits = ImageLimits(config.max_frame_bytes, config.max_frame_pixels, config.max_frames)
        frames = read_frames(files, min_frames=config.min_frames, max_frames=config.max_frames, limits=limits)
        frame_times = parse_frame_times(frame_times_raw, len(frames))
    except CaptureError as error:
        _record(audit.FAILURE, reasons.BAD_CAPTURE, user=None, claimed=claimed, details={"capture": error.reason})
        return Outcome(400, {"ok": False, "error": "bad_capture", "message": str(error)})

    user = db().scalar(select(User).where(User.username_key == normalize_username(claimed)))
    now = utcnow()
    if user is not None and is_locked(user.locked_until, now):
        return _refuse(reasons.LOCKED, user=user, claimed=claimed, count_failure=False)

    if config.password_required:
        # One argon2 verification whether or not the user exists (same time either way).
        if not verify_password(user.password_hash if user is not None else None, password or ""):
            if user is None:
                return _refuse(reasons.UNKNOWN_USER, user=None, claimed=claimed)
            reason = reasons.NO_PASSWORD_SET if user.password_hash is None else reasons.BAD_PASSWORD
            return _refuse(reason, user=user, claimed=claimed)
        assert user is not None and user.password_hash is not None
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)

    try:
        if user is None or not user.is_active or not user.templates:
            # Do the liveness work anyway, so the answer takes as long as for an enrolled account.
            services.check(frames, challenge.actions, frame_times)
            if user is None:
                return _refuse(reasons.UNKNOWN_USER, user=None, claimed=claimed)
            if not user.is_active:
                return _refuse(reasons.DISABLED, user=user, claimed=claimed, count_failure=False)
            return _refuse(reasons.NO_TEMPLATES, user=user, claimed=claimed)
        templates = [t.vector() for t in user.templates]
        check, verify = services.check_and_verify(frames, challenge.actions, frame_times, templates)
    except ServiceUnavailable as error:
        _record(
            audit.ERROR,
            reasons.SERVICE_UNAVAILABLE,
            user=user,
            claimed=claimed,
            details={"service": error.service, "code": error.code},
        )
        raise

    outcome = decide_login(
        check,
        verify,
        challenge_length=len(challenge.actions),
        min_matched_frames=config.min_matched_frames,
        template_model_versions=[t.model_version for t in user.templates],
    )
    if not outcome.accepted:
        return _refuse(outcome.reason, user=user, claimed=claimed, outcome=outcome)

    state = after_success()
    user.failed_attempts, user.lockout_count, user.locked_until = (
        state.failed_attempts,
        state.lockout_count,
        state.locked_until,
    )
    user.last_login_at = dt.datetime.now(dt.UTC)
    db().commit()
    sign_in(user)
    _record(audit.SUCCESS, reasons.OK, user=user, claimed=claimed, outcome=outcome)
    return Outcome(200, {"ok": True, "message": f"Welcome, {user.username}.", "redirect": "/account"})
