"""The login flow: challenge → capture → password (when required) → liveness ∥ recognition → decision → session.

The browser learns accepted or refused; the audit log learns why.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flask import request, session
from werkzeug.datastructures import FileStorage

from auth_web import audit, context, throttle
from auth_web import decision as reasons
from auth_web import metrics as auth_metrics
from auth_web.accounts import (
    ThrottleVerdict,
    ValidationError,
    hash_password,
    needs_rehash,
    validate_username,
    verify_password,
)
from auth_web.auth_helpers import sign_in
from auth_web.challenges import PURPOSE_LOGIN, random_actions
from auth_web.config import Settings
from auth_web.db import db
from auth_web.decision import Decision, decide_login
from auth_web.errors import RATE_LIMITED_MESSAGE
from auth_web.face_services import CaptureRejected, FaceServices, ServiceUnavailable
from auth_web.models import EMBEDDING_DIMENSIONS, User
from auth_web.template_crypto import TemplateDecryptionError
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
    headers: dict[str, str] = field(default_factory=dict)


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
    config = context.settings()
    # Every account's name follows the username rules (registration, CLI and import all check them), so a name
    # that breaks them is refused as input without revealing anything; that also keeps NUL bytes, control
    # characters and surrogates out of Redis, Postgres and the audit log.
    if not isinstance(username_raw, str) or not username_raw.strip():
        return Outcome(400, {"ok": False, "error": "bad_request", "message": "Enter your username."})
    try:
        username = validate_username(username_raw)
    except ValidationError as error:
        return Outcome(400, {"ok": False, "error": "bad_username", "message": str(error)})
    # Told before the capture, not after it: an attempt now would only be answered 429 (nothing is revealed:
    # the failures are counted by claimed name and address, whether or not the account exists).
    verdict = context.failure_log().verdict(username, _client_address())
    if verdict.throttled:
        return _throttled(verdict, username)
    store = context.challenges()
    session["challenge_bound"] = True  # make sure this browser session is stored, so the binding holds
    actions = random_actions(config.challenge_actions, config.challenge_length)
    challenge = store.issue(PURPOSE_LOGIN, actions, context.browser_session().hash, username=username)
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


def _client_address() -> str:
    """The client's address (the gateway's X-Forwarded-For already applied by the trusted-proxy fix)."""
    return request.remote_addr or ""


def _throttled(verdict: ThrottleVerdict, claimed: str) -> Outcome:
    """A soft delay: 429 with Retry-After at once, no work done and no failure counted (a gunicorn thread is
    not held for the delay; the client waits, and the capture page says so)."""
    seconds = max(1, math.ceil(verdict.retry_after))
    auth_metrics.metrics().rate_limited.labels(endpoint=request.endpoint or "unmatched").inc()
    audit.record(
        "rate_limit",
        audit.FAILURE,
        reasons.RATE_LIMITED,
        claimed_username=claimed,
        details={"path": request.path, "throttle": verdict.by, "retry_after": seconds},
    )
    body = {"ok": False, "error": "rate_limited", "message": RATE_LIMITED_MESSAGE, "retry_after": seconds}
    return Outcome(429, body, headers={"Retry-After": str(seconds)})


@functools.lru_cache(maxsize=4)
def decoy_templates(count: int) -> tuple[tuple[float, ...], ...]:
    """Templates no face matches, for claimed users without templates of their own (unknown, disabled, not
    enrolled): recognition then does the same work as for an enrolled user, so the time of the answer does not
    tell whether the account exists. Random unit directions in the embedding space: a real face's embedding is
    about 1.4 away from every one of them, far beyond any match threshold; and a match would change nothing,
    since such an attempt is refused before the face counts."""
    rng = np.random.default_rng(0x5EED_DEC0)
    vectors = rng.normal(size=(count, EMBEDDING_DIMENSIONS))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return tuple(tuple(float(value) for value in vector) for vector in vectors)


def _face_decision(
    config: Settings,
    services: FaceServices,
    enrolled: User | None,
    frames: list[bytes],
    frame_times: list[int],
    actions: Sequence[str],
) -> Decision:
    """Liveness ∥ recognition against the enrolled user's templates, or against the decoys when there is none."""
    if enrolled is not None:
        try:
            templates: Sequence[Sequence[float]] = [t.vector(config.template_cipher) for t in enrolled.templates]
        except TemplateDecryptionError as error:
            # Our key configuration (or a tampered row), not the user's capture: nobody gets in, the user sees
            # "temporarily unavailable", the audit row and the log name the key problem.
            raise ServiceUnavailable("template-key", error.reason) from error
        versions = [t.model_version for t in enrolled.templates]
    else:
        templates, versions = decoy_templates(config.enroll_max_templates), []
    check, verify = services.check_and_verify(frames, actions, frame_times, templates)
    return decide_login(
        check,
        verify,
        challenge_length=len(actions),
        min_matched_frames=config.min_matched_frames,
        template_model_versions=versions or [verify.model_version],
    )


def _refusal(
    verdict: ThrottleVerdict, user: User | None, password_ok: bool, bad_capture: bool, face: Decision | None
) -> str | None:
    """The audit reason an attempt is refused for, or None when it is accepted. Only the audit sees it: every
    refusal gets the same answer, so the order here is only about which reason is the most telling."""
    if verdict.locked:
        return reasons.LOCKED
    if user is None:
        return reasons.UNKNOWN_USER
    if not password_ok:
        return reasons.NO_PASSWORD_SET if user.password_hash is None else reasons.BAD_PASSWORD
    if not user.is_active:
        return reasons.DISABLED
    if bad_capture:
        return reasons.BAD_CAPTURE
    if not user.templates:
        return reasons.NO_TEMPLATES
    assert face is not None
    return None if face.accepted else face.reason


def _refuse(
    reason: str,
    *,
    user: User | None,
    claimed: str,
    failures: throttle.FailureLog,
    outcome: Decision | None = None,
    details: dict[str, Any] | None = None,
) -> Outcome:
    """Every refused attempt after a valid challenge: counted (by claimed name and address, whether or not the
    account exists), audited with the user id when there is a user, and one answer for all of them."""
    details = dict(details or {})
    locked = failures.record_failure(claimed, _client_address())
    if locked:
        auth_metrics.metrics().lockouts.inc(len(locked))
        details["locked"] = locked
    _record(audit.FAILURE, reason, user=user, claimed=claimed, outcome=outcome, details=details)
    return Outcome(401, {"ok": False, "error": "login_failed", "message": GENERIC_FAILURE})


def attempt(nonce: str, password: str, files: list[FileStorage], frame_times_raw: str | None) -> Outcome:
    """One login attempt. Whatever fails — the challenge aside — the same work is done and the same answer given:

    the password is checked with one argon2 verification on every path (unknown user, no password, locked
    account, unusable capture), and liveness ∥ recognition run on every usable capture (against decoy templates
    when the claimed user has none), whatever the password was. So neither the status, the body nor the time
    of a refusal says whether the password was right, unless the face passed too.
    """
    config = context.settings()
    services = context.face_services()

    challenge, invalid = context.challenges().consume(nonce, PURPOSE_LOGIN, context.browser_session().hash)
    if challenge is None:
        _record(audit.FAILURE, invalid, user=None, claimed="")
        return Outcome(400, {"ok": False, "error": "challenge_invalid", "message": CHALLENGE_EXPIRED})
    claimed = challenge.username
    failures = context.failure_log()
    verdict = failures.verdict(claimed, _client_address())
    if verdict.throttled:
        return _throttled(verdict, claimed)

    user = context.find_user(db(), claimed)
    details: dict[str, Any] = {}
    frames: list[bytes] = []
    frame_times: list[int] = []
    try:
        limits = ImageLimits(config.max_frame_bytes, config.max_frame_pixels, config.max_frames)
        frames = read_frames(files, min_frames=config.min_frames, max_frames=config.max_frames, limits=limits)
        frame_times = parse_frame_times(frame_times_raw, len(frames))
    except CaptureError as error:
        details["capture"] = error.reason

    # One argon2 verification on every path (a dummy hash without a user or password); its result is used last.
    password_ok = not config.password_required or verify_password(
        user.password_hash if user is not None else None, password or ""
    )

    enrolled = user if user is not None and user.is_active and user.templates else None
    face: Decision | None = None
    if "capture" not in details:
        try:
            face = _face_decision(config, services, enrolled, frames, frame_times, challenge.actions)
        except CaptureRejected as error:
            # A frame that passed the header checks but does not decode (e.g. a truncated JPEG).
            details.update(capture="REJECTED_BY_SERVICE", service=error.service)
        except ServiceUnavailable as error:
            _record(
                audit.ERROR,
                reasons.SERVICE_UNAVAILABLE,
                user=user,
                claimed=claimed,
                details={"service": error.service, "code": error.code},
            )
            raise

    reason = _refusal(verdict, user, password_ok, "capture" in details, face)
    if reason is not None:
        # Scores against decoy templates mean nothing: only an enrolled user's are audited.
        shown = face if enrolled is not None else None
        return _refuse(reason, user=user, claimed=claimed, failures=failures, outcome=shown, details=details)
    assert user is not None and face is not None

    failures.record_success(claimed, _client_address())
    if config.password_required and user.password_hash is not None and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = dt.datetime.now(dt.UTC)
    db().commit()
    sign_in(user)
    _record(audit.SUCCESS, reasons.OK, user=user, claimed=claimed, outcome=face)
    return Outcome(200, {"ok": True, "message": f"Welcome, {user.username}.", "redirect": "/account"})
