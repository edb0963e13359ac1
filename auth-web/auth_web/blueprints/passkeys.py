"""Passkeys on the account page: add (WebAuthn registration, JSON for the page's script), rename, remove.

Adding and removing a passkey changes how the account signs in, so both need a fresh ceremony
(``reauth.fresh_auth_required``); every change is audited (passkeys.py).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, g, jsonify, redirect, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from auth_web import passkeys, reasons
from auth_web.auth_helpers import login_required
from auth_web.blueprints.api import _json
from auth_web.ceremony import Refusal, Refused
from auth_web.forms import ActionForm
from auth_web.reauth import fresh_auth_required

bp = Blueprint("passkeys", __name__)


@bp.post("/api/passkeys/options")
@login_required
@fresh_auth_required
def registration_options() -> Response:
    return jsonify({"ok": True, "publicKey": passkeys.registration_options(g.user).public_key})


@bp.post("/api/passkeys")
@login_required
@fresh_auth_required
def register() -> Response:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _json(Refused(Refusal.BAD_REQUEST, reasons.BAD_REQUEST, _("Send JSON {credential, name}.")))
    result = passkeys.register(g.user, payload.get("credential"), payload.get("name"))
    if isinstance(result, passkeys.Registered):
        flash(result.message, "success")
        return jsonify({"ok": True, "id": result.passkey_id, "name": result.name, "message": result.message})
    return _json(result)


@bp.post("/account/passkeys/<int:passkey_id>/remove")
@login_required
@fresh_auth_required
def remove(passkey_id: int) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        abort(400)
    if passkeys.remove(g.user, passkey_id):
        flash(_("The passkey is removed. It can no longer sign in to this account."), "success")
    else:
        flash(_("That passkey was already removed."), "info")
    return redirect(url_for("account.dashboard"))


@bp.post("/account/passkeys/<int:passkey_id>/rename")
@login_required
def rename(passkey_id: int) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        abort(400)
    if passkeys.rename(g.user, passkey_id, request.form.get("name")):
        flash(_("The passkey is renamed."), "success")
    return redirect(url_for("account.dashboard"))
