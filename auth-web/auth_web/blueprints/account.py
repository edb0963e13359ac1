"""The signed-in user's dashboard: face data, active sessions (revoke)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from werkzeug.wrappers import Response

from auth_web import audit, context, reasons
from auth_web.auth_helpers import login_required
from auth_web.forms import ActionForm
from auth_web.user_agents import describe_user_agent

bp = Blueprint("account", __name__)


@bp.get("/account")
@login_required
def dashboard() -> str:
    user = g.user
    sessions = context.sessions().list_user_sessions(user.id)
    current_hash = context.browser_session().hash
    for item in sessions:
        item["current"] = item["hash"] == current_hash
        item["browser"] = describe_user_agent(item["agent"])
    return render_template("account.html", user=user, templates=user.templates, sessions=sessions, form=ActionForm())


@bp.post("/account/sessions/<handle>/revoke")
@login_required
def revoke_session(handle: str) -> Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    if handle == context.browser_session().hash[:24]:
        flash("To end this session, sign out.", "info")
    elif context.sessions().revoke(g.user.id, handle):
        audit.record(
            reasons.SESSION_REVOKE, reasons.SUCCESS, reasons.OK, user_id=g.user.id, claimed_username=g.user.username
        )
        flash("The session is ended.", "success")
    else:
        flash("That session had already ended.", "info")
    return redirect(url_for("account.dashboard"))
