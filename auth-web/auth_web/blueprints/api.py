"""JSON/multipart endpoints used by the capture page. CSRF: the X-CSRFToken header."""

from __future__ import annotations

import functools
import json
from importlib import resources

from flask import Blueprint, Response, jsonify, request

from auth_web import enrollment, login
from auth_web.auth_helpers import login_required

bp = Blueprint("api", __name__, url_prefix="/api")

#: The reviewed OpenAPI 3.1 description of this API (a unit test keeps it equal to the app's routes).
OPENAPI_RESOURCE = "openapi.json"


@functools.cache
def openapi_document() -> bytes:
    text = resources.files("auth_web").joinpath(OPENAPI_RESOURCE).read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":")).encode()


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(openapi_document(), mimetype="application/json")


def _json(outcome: login.Outcome) -> Response:
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    response.headers.update(outcome.headers)
    return response


@bp.post("/login/challenge")
def login_challenge() -> Response:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _json(login.Outcome(400, {"ok": False, "error": "bad_request", "message": "Send JSON {username}."}))
    return _json(login.issue_challenge(payload.get("username")))


@bp.post("/login")
def login_attempt() -> Response:
    return _json(
        login.attempt(
            request.form.get("nonce", ""),
            request.form.get("password", ""),
            request.files.getlist("frames"),
            request.form.get("frame_times_ms"),
        )
    )


@bp.post("/enroll/challenge")
@login_required
def enroll_challenge() -> Response:
    return _json(enrollment.issue_challenge())


@bp.post("/enroll")
@login_required
def enroll() -> Response:
    return _json(
        enrollment.enroll(
            request.form.get("nonce", ""), request.files.getlist("frames"), request.form.get("frame_times_ms")
        )
    )
