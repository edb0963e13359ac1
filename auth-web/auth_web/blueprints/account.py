"""The signed-in user's dashboard: face data, security activity, e-mail address, password, active sessions."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.wrappers import Response

from auth_web import account_security, audit, context, i18n, reasons, reauth
from auth_web.accounts import ValidationError, verify_password
from auth_web.auth_helpers import login_required
from auth_web.db import db
from auth_web.forms import ActionForm, ChangePasswordForm, EmailForm
from auth_web.reauth import fresh_auth_required
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
    return render_template(
        "account.html",
        user=user,
        templates=user.templates,
        sessions=sessions,
        form=ActionForm(),
        email_form=EmailForm(email=user.email or ""),
        activity=account_security.security_activity(db(), user),
        fresh_seconds=reauth.seconds_left(),
    )


def end_other_sessions(user_id: int) -> int:
    """Every session of the user but this browser's (a password change signs out everyone else)."""
    current = context.browser_session().hash
    store = context.sessions()
    ended = 0
    for item in store.list_user_sessions(user_id):
        if item["hash"] != current and store.revoke(user_id, item["hash"]):
            ended += 1
    return ended


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@fresh_auth_required
def change_password() -> str | Response:
    """Current password + a fresh ceremony (the decorator) + the existing policy; other sessions end."""
    user = g.user
    settings = context.settings()
    form = ChangePasswordForm()
    if user.password_hash is None:
        # An account imported without a password sets its first one: there is no current one to ask for (the
        # fresh ceremony still is).
        form.current.validators = []
    if form.validate_on_submit():
        if user.password_hash is not None and not verify_password(user.password_hash, form.current.data or ""):
            form.current.errors.append(_("That is not your current password."))  # type: ignore[union-attr]
            audit.record(
                reasons.PASSWORD_CHANGE,
                reasons.FAILURE,
                reasons.BAD_CURRENT_PASSWORD,
                user_id=user.id,
                claimed_username=user.username,
            )
        else:
            try:
                account_security.change_password(
                    db(), user, form.password.data or "", min_length=settings.password_min_length, channel="account"
                )
            except ValidationError as error:
                form.password.errors.append(i18n.rule_message(error))  # type: ignore[union-attr]
            else:
                ended = end_other_sessions(user.id)
                if ended:
                    message = ngettext(
                        "Your password is changed. You are signed out on %(num)d other device.",
                        "Your password is changed. You are signed out on %(num)d other devices.",
                        ended,
                    )
                else:
                    message = _("Your password is changed.")
                flash(message, "success")
                return redirect(url_for("account.dashboard"))
    status = 400 if form.is_submitted() else 200
    return render_template("password.html", form=form, has_password=user.password_hash is not None), status  # type: ignore[return-value]


@bp.post("/account/email")
@login_required
@fresh_auth_required
def change_email() -> Response:
    form = EmailForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        email = account_security.change_email(db(), g.user, form.email.data or "")
    except ValidationError as error:
        flash(i18n.rule_message(error), "error")
    else:
        flash(
            _("Your e-mail address is now %(email)s.", email=email) if email else _("Your e-mail address is removed."),
            "success",
        )
    return redirect(url_for("account.dashboard"))


@bp.post("/account/sessions/<handle>/revoke")
@login_required
def revoke_session(handle: str) -> Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    if handle == context.browser_session().hash[:24]:
        flash(_("To end this session, sign out."), "info")
    elif context.sessions().revoke(g.user.id, handle):
        audit.record(
            reasons.SESSION_REVOKE, reasons.SUCCESS, reasons.OK, user_id=g.user.id, claimed_username=g.user.username
        )
        flash(_("The session is ended."), "success")
    else:
        flash(_("That session had already ended."), "info")
    return redirect(url_for("account.dashboard"))
