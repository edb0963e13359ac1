"""JSON/multipart endpoints used by the capture page. CSRF: the X-CSRFToken header.

The flows (``login``, ``enrollment``) return domain results; this module alone turns them into status codes
and JSON bodies.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from importlib import resources
from typing import Any

from flask import Blueprint, Response, flash, g, jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from auth_web import actions, calibration, context, enrollment, login, reasons, recovery
from auth_web.auth_helpers import admin_required, login_required
from auth_web.calibration import Calibrated
from auth_web.ceremony import Enrolled, Issued, Refusal, Refused, Result, SignedIn
from auth_web.db import db
from auth_web.flash import LEAD_MS
from auth_web.models import User
from auth_web.reauth import fresh_auth_required

bp = Blueprint("api", __name__, url_prefix="/api")

#: The reviewed OpenAPI 3.1 description of this API (a unit test keeps it equal to the app's routes).
OPENAPI_RESOURCE = "openapi.json"
SEND_JSON = _l("Send JSON {username}.")

#: The status code of each refusal.
REFUSAL_STATUS = {
    Refusal.BAD_REQUEST: 400,
    Refusal.BAD_USERNAME: 400,
    Refusal.CHALLENGE_INVALID: 400,
    Refusal.BAD_CAPTURE: 400,
    Refusal.LOGIN_FAILED: 401,
    Refusal.ENROLLMENT_FAILED: 422,
    Refusal.RATE_LIMITED: 429,
    Refusal.LOCKED: 429,
    Refusal.ACCOUNT_UNUSABLE: 403,
    Refusal.PASSKEY_FAILED: 400,
    Refusal.FALLBACK_NOT_ALLOWED: 403,
}
#: Where the page goes after a sign-in or an enrollment.
AFTER_CAPTURE = "/account"


@functools.cache
def openapi_document() -> bytes:
    text = resources.files("auth_web").joinpath(OPENAPI_RESOURCE).read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":")).encode()


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(openapi_document(), mimetype="application/json")


def _challenge_body(issued: Issued) -> dict[str, Any]:
    config = context.settings()
    capture = config.capture
    challenge = issued.challenge
    flash = None
    if challenge.flash:
        steps = [{"colour": step.colour, "duration_ms": step.duration_ms} for step in challenge.flash]
        flash = {"steps": steps, "notice_ms": config.flash.notice_ms, "lead_ms": LEAD_MS}
    return {
        "ok": True,
        "nonce": challenge.nonce,
        "actions": list(challenge.actions),
        "prompts": [str(actions.PROMPTS[action]) for action in challenge.actions],
        "expires_in": config.challenge_ttl_seconds,
        "flash": flash,
        "capture": {
            "frames": challenge.capture_frames or capture.frames,
            "fps": capture.fps,
            "width": capture.width,
            "height": capture.height,
            "jpeg_quality": capture.jpeg_quality,
            "placement_wait_ms": capture.placement_wait_ms,
        },
        "password_required": config.password_required,
    }


def _json(result: Result | Calibrated) -> Response:
    """The response for a flow's result."""
    headers: dict[str, str] = {}
    status = 200
    body: dict[str, Any]
    if isinstance(result, Issued):
        body = _challenge_body(result)
    elif isinstance(result, SignedIn):
        body = {"ok": True, "message": str(result.message), "redirect": AFTER_CAPTURE}
    elif isinstance(result, Enrolled):
        body = {"ok": True, "templates": result.templates, "message": str(result.message), "redirect": AFTER_CAPTURE}
    elif isinstance(result, Calibrated):
        body = {"ok": True, **dataclasses.asdict(result)}
    else:
        status = REFUSAL_STATUS[result.refusal]
        # ``error``: a code for programs (never translated); ``message``: for the person, in the request's language.
        body = {"ok": False, "error": str(result.refusal), "message": str(result.message)}
        if result.fallback is not None:
            body["fallback"] = result.fallback
        if result.retry_after is not None:
            body["retry_after"] = result.retry_after
            headers["Retry-After"] = str(result.retry_after)
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


@bp.post("/login/challenge")
def login_challenge() -> Response:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _json(Refused(Refusal.BAD_REQUEST, reasons.BAD_REQUEST, SEND_JSON))
    return _json(login.issue_challenge(payload.get("username")))


@bp.post("/login")
def login_attempt() -> Response:
    return _json(
        login.attempt(
            request.form.get("nonce", ""),
            request.form.get("password", ""),
            request.files.getlist("frames"),
            request.form.get("frame_times_ms"),
            request.form.get("flash_start_ms"),
        )
    )


def _recovering_face() -> tuple[recovery.RecoveryState, User] | None:
    """This browser's recovery session when it may enroll the face (a link for ``face`` or ``both``)."""
    if g.get("user") is not None:
        return None
    found = recovery.current(db())
    return found if found is not None and found[0].allows(recovery.STEP_FACE) else None


@bp.post("/enroll/challenge")
def enroll_challenge() -> Response:
    """A signed-in user with a fresh ceremony, or a recovery session whose link enrolls the face."""
    recovering = _recovering_face()
    if recovering is not None:
        return _json(enrollment.issue_challenge(recovering[1]))
    return _signed_in_enroll_challenge()


@login_required
@fresh_auth_required
def _signed_in_enroll_challenge() -> Response:
    return _json(enrollment.issue_challenge())


def _enroll_fields() -> tuple[str, list[Any], str | None, str | None]:
    form = request.form
    return (
        form.get("nonce", ""),
        request.files.getlist("frames"),
        form.get("frame_times_ms"),
        form.get("flash_start_ms"),
    )


@bp.post("/enroll")
def enroll() -> Response:
    recovering = _recovering_face()
    if recovering is None:
        return _signed_in_enroll()
    state, user = recovering
    result = enrollment.enroll(*_enroll_fields(), user=user, channel="recovery_link")
    if isinstance(result, Enrolled) and recovery.finish_step(state, recovery.STEP_FACE):
        flash(_("Your account is ready. Sign in now with your face."), "success")
    return _json(result)


@login_required
@fresh_auth_required
def _signed_in_enroll() -> Response:
    return _json(enrollment.enroll(*_enroll_fields()))


@bp.post("/admin/flash/challenge")
@admin_required
def flash_calibration_challenge() -> Response:
    return _json(calibration.issue_challenge())


@bp.post("/admin/flash/check")
@admin_required
def flash_calibration_check() -> Response:
    return _json(
        calibration.check(
            request.form.get("nonce", ""),
            request.files.getlist("frames"),
            request.form.get("frame_times_ms"),
            request.form.get("flash_start_ms"),
        )
    )
