"""The login's first-factor steps (login_flow.py, passkeys.py), before the camera starts, and the passkey fallback
after a failed face check. The face step itself is /api/login/challenge + /api/login (blueprints/api.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_babel import gettext as _

from auth_web import login_flow, passkeys, reasons
from auth_web.blueprints.api import SEND_JSON, _json
from auth_web.ceremony import Refusal, Refused, Result

bp = Blueprint("login_steps", __name__, url_prefix="/api/login")


def _payload() -> dict[str, Any] | None:
    payload = request.get_json(silent=True)
    return payload if isinstance(payload, dict) else None


def _answer(result: login_flow.FirstFactorPassed | passkeys.PasskeyOptions | Result) -> Response:
    if isinstance(result, login_flow.FirstFactorPassed):
        return jsonify({"ok": True, "next": result.next_step})
    if isinstance(result, passkeys.PasskeyOptions):
        return jsonify({"ok": True, "publicKey": result.public_key})
    return _json(result)


def _bad_request(message: str | None = None) -> Response:
    return _json(Refused(Refusal.BAD_REQUEST, reasons.BAD_REQUEST, message or str(SEND_JSON)))


@bp.post("/password")
def password() -> Response:
    """``password+face``: username and password, checked before the camera starts."""
    payload = _payload()
    if payload is None:
        return _bad_request(_("Send JSON {username, password}."))
    return _answer(login_flow.check_password(payload.get("username"), payload.get("password")))


@bp.post("/passkey/options")
def passkey_options() -> Response:
    """``passkey+face``: the options for navigator.credentials.get() towards the claimed account."""
    payload = _payload()
    if payload is None:
        return _bad_request()
    return _answer(passkeys.login_options(payload.get("username")))


@bp.post("/passkey")
def passkey() -> Response:
    """``passkey+face``: the assertion (PublicKeyCredential JSON) for this session's challenge."""
    payload = _payload()
    if payload is None:
        return _bad_request(_("Send JSON {credential}."))
    return _answer(passkeys.login_check(payload.get("credential")))


@bp.post("/fallback/options")
def fallback_options() -> Response:
    """ "Use your passkey instead": options, only after this session's face check failed (AUTH_PASSKEY_FALLBACK)."""
    return _answer(passkeys.fallback_options())


@bp.post("/fallback")
def fallback() -> Response:
    payload = _payload()
    if payload is None:
        return _bad_request(_("Send JSON {credential}."))
    return _answer(passkeys.fallback_check(payload.get("credential")))
