"""Recovery links (/recover/<token>), the narrow session they open (/recover), and self-service by e-mail
(/recover/forgot). The rules are in recovery.py."""

from __future__ import annotations

import logging
import smtplib

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from auth_web import account_security, audit, context, i18n, reasons, recovery
from auth_web.accounts import ValidationError, normalize_username
from auth_web.config import LOCAL_RUN_URL
from auth_web.db import db
from auth_web.forms import ActionForm, ForgotForm, SetPasswordForm
from auth_web.models import User

log = logging.getLogger(__name__)

bp = Blueprint("recovery", __name__, url_prefix="/recover")

#: What a refused link's page says (the audit keeps the reason).
REFUSED = {
    reasons.LINK_UNKNOWN: (_l("This link is not valid"), _l("Check that you copied the whole link.")),
    reasons.LINK_USED: (_l("This link was already used"), _l("A recovery link works once.")),
    reasons.LINK_EXPIRED: (_l("This link has expired"), _l("Recovery links are valid for a limited time.")),
    reasons.LINK_REVOKED: (
        _l("This link was replaced"),
        _l("A newer link was issued for the same purpose; use that one."),
    ),
    reasons.DISABLED: (_l("This account is disabled"), _l("Ask your administrator.")),
}
FORGOT_ANSWER = _l(
    "If an account with that username or e-mail address exists and has an e-mail address, we sent it a link. "
    "It works once and expires in %(hours)s hours. Nothing arrived? Check the spam folder, or ask your administrator."
)


def _refused_page(reason: str) -> tuple[str, int]:
    title, explanation = REFUSED.get(reason, REFUSED[reasons.LINK_UNKNOWN])
    message = str(explanation)
    settings = context.settings()
    if reason != reasons.DISABLED:
        if settings.self_service_recovery:
            more = _(
                "To get back in, request a new one from the sign-in page, or ask your administrator for a new link."
            )
        else:
            more = _("To get back in, ask your administrator for a new link.")
        message += " " + more
    status = {reasons.LINK_UNKNOWN: 404, reasons.DISABLED: 403}.get(reason, 410)
    return render_template("recovery_refused.html", title=str(title), message=message, status=status), status


@bp.get("/<token>")
def follow(token: str) -> str | tuple[str, int]:
    """Shows what the link does; using it takes a POST (a mail scanner's or a link preview's GET does not)."""
    found = recovery.check(db(), token)
    if found.reason is not None or found.link is None or found.user is None:
        return _refused_page(found.reason or reasons.LINK_UNKNOWN)
    return render_template(
        "recovery_start.html",
        form=ActionForm(),
        token=token,
        username=found.user.username,
        purpose=str(recovery.PURPOSE_LABELS[found.link.purpose]),
        with_face=found.link.purpose != recovery.RECOVERY_PASSWORD,
        signed_in=g.get("user") is not None,
    )


@bp.post("/<token>")
def use(token: str) -> Response | tuple[str, int]:
    if not ActionForm().validate_on_submit():
        abort(400)
    found = recovery.redeem(db(), token)
    if found.reason is not None or found.link is None or found.user is None:
        audit.record(
            reasons.RECOVERY_USE,
            reasons.FAILURE,
            found.reason or reasons.LINK_UNKNOWN,
            user_id=found.user.id if found.user is not None else None,
            claimed_username=found.user.username if found.user is not None else None,
            details={"link_id": found.link.id} if found.link is not None else None,
        )
        return _refused_page(found.reason or reasons.LINK_UNKNOWN)
    recovery.start_session(found.link)
    g.user = None
    audit.record(
        reasons.RECOVERY_USE,
        reasons.SUCCESS,
        reasons.OK,
        user_id=found.user.id,
        claimed_username=found.user.username,
        details={"link_id": found.link.id, "purpose": found.link.purpose, "channel": found.link.channel},
    )
    return redirect(url_for("recovery.progress"))


@bp.get("")
def progress() -> str | Response:
    """The recovery session's remaining steps (a password form, the enrollment capture), or the sign-in page
    when there is none (finished, expired, or never started)."""
    found = recovery.current(db())
    if found is None:
        return redirect(url_for("auth.login"))
    state, user = found
    remaining = state.remaining
    step = remaining[0]
    if step == recovery.STEP_PASSWORD:
        return render_template(
            "recovery_password.html", form=SetPasswordForm(), username=user.username, steps=remaining, state=state
        )
    return render_template(
        "enroll.html",
        capture=context.settings().capture,
        form=ActionForm(),
        templates=len(user.templates),
        recovery=True,
        recovery_user=user.username,
        enroll_urls={"challenge": url_for("api.enroll_challenge"), "submit": url_for("api.enroll")},
        next_url=url_for("recovery.progress"),
    )


@bp.post("/password")
def set_password() -> str | Response | tuple[str, int]:
    found = recovery.current(db())
    if found is None or not found[0].allows(recovery.STEP_PASSWORD):
        flash(_("That recovery session has ended. Sign in, or use a new recovery link."), "info")
        return redirect(url_for("auth.login"))
    state, user = found
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            account_security.change_password(
                db(),
                user,
                form.password.data or "",
                min_length=context.settings().password_min_length,
                channel="recovery_link",
            )
        except ValidationError as error:
            form.password.errors.append(i18n.rule_message(error))  # type: ignore[union-attr]
        else:
            # Whoever holds a session of the account (it was lost or taken over) is signed out, and the failed
            # sign-ins of the forgotten password do not delay the owner's next one.
            context.sessions().end_all(user.id)
            context.failure_log().forget_username(user.username)
            if recovery.finish_step(state, recovery.STEP_PASSWORD):
                flash(_("Your password is set. Sign in now."), "success")
                return redirect(url_for("auth.login"))
            flash(_("Your password is set. Now enroll your face."), "success")
            return redirect(url_for("recovery.progress"))
    page = render_template(
        "recovery_password.html", form=form, username=user.username, steps=state.remaining, state=state
    )
    return page, 400


# -- self-service: "Forgot password or face?" ---------------------------------------------------------------------


@bp.route("/forgot", methods=["GET", "POST"])
def forgot() -> str | tuple[str, int]:
    settings = context.settings()
    if not settings.self_service_recovery:
        return render_template(
            "error.html",
            status=404,
            title=_("Ask your administrator"),
            message=_("This server cannot send e-mail, so a recovery link has to come from your administrator."),
        ), 404
    form = ForgotForm()
    answered = False
    if form.validate_on_submit():
        identifier = (form.identifier.data or "").strip()[:254]
        # The same answer, at once, for every identifier: the lookup, the link and the mail happen off the
        # request thread (mail.Mailer.in_background), so neither the page nor its time says whether it matched.
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        address = request.remote_addr
        language = i18n.locale_name()  # the mail speaks the language of the page that asked for it
        context.mailer().in_background(lambda: _send_link(app, identifier, address, language))
        answered = True
        form = ForgotForm(formdata=None)
    hours = max(1, settings.recovery_link_ttl_seconds // 3600)
    answer = str(FORGOT_ANSWER) % {"hours": hours}
    return render_template("forgot.html", form=form, answered=answered, answer=answer)


def _send_link(app: object, identifier: str, address: str | None, language: str = i18n.DEFAULT) -> None:
    """The background half of "Forgot password or face?": find the account, issue its link, mail it (in
    ``language``)."""
    with app.app_context(), force_locale(language):  # type: ignore[attr-defined]
        settings = context.settings()
        factory = context.session_factory()
        with factory() as session:
            key = normalize_username(identifier)
            user = session.scalar(select(User).where(or_(User.username_key == key, User.email_key == key)))
            if user is None or not user.is_active or not user.email:
                audit.record(
                    reasons.RECOVERY_REQUEST,
                    reasons.FAILURE,
                    reasons.NO_ADDRESS,
                    user_id=user.id if user is not None else None,
                    claimed_username=identifier[:64],
                    client_address=address,
                )
                return
            issued = account_security.issue_link(
                session,
                user,
                recovery.self_service_purpose(user),
                channel=recovery.CHANNEL_EMAIL,
                ttl_seconds=settings.recovery_link_ttl_seconds,
                client_address=address,
            )
            # Never the request's Host header: a forged one would put the attacker's site into the victim's mail.
            url = recovery.link_url(settings.public_url or LOCAL_RUN_URL, issued.token)
            try:
                context.mailer().send(user.email, _("Your faceauth recovery link"), _mail_body(user, issued, url))
            except (smtplib.SMTPException, OSError) as error:
                log.error("recovery_mail_failed", extra={"fields": {"error": type(error).__name__}})
                audit.record(
                    reasons.RECOVERY_REQUEST,
                    reasons.ERROR,
                    reasons.MAIL_FAILED,
                    user_id=user.id,
                    claimed_username=user.username,
                    client_address=address,
                )
                return
            audit.record(
                reasons.RECOVERY_REQUEST,
                reasons.SUCCESS,
                reasons.OK,
                user_id=user.id,
                claimed_username=user.username,
                details={"purpose": issued.link.purpose},
                client_address=address,
            )


def _mail_body(user: User, issued: recovery.IssuedLink, url: str) -> str:
    settings = context.settings()
    hours = max(1, settings.recovery_link_ttl_seconds // 3600)
    purpose = str(recovery.PURPOSE_LABELS[issued.link.purpose])
    if issued.link.purpose == recovery.RECOVERY_PASSWORD:
        face_note = _(
            "This link cannot change your enrolled face: if your face no longer signs you in, ask your administrator "
            "to reset it."
        )
    else:
        face_note = _("Your account has no face enrolled, so this link also lets you enroll it.")
    paragraphs = [
        _("Hello %(name)s,", name=user.username),
        _(
            "someone (hopefully you) asked for a way back into your faceauth account. This link lets you %(purpose)s:",
            purpose=purpose,
        ),
        f"  {url}",
        _("It works once and expires in %(hours)s hours.", hours=hours) + " " + face_note,
        _(
            "If you did not ask for it, ignore this mail: nothing changes until the link is used. "
            'Your account page lists every change under "Security activity".'
        ),
    ]
    return "\n\n".join(paragraphs) + "\n"
