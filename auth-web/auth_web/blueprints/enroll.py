"""The enrollment page, and deleting one's face data (asked for confirmation).

Both need a fresh ceremony (reauth.py): a copied session cookie, or a session left open, must not be able to
replace the face (the attacker's own would then sign in) or remove it. A first enrollment too: registration signs
in with a fresh ``pwd`` ceremony, so a new account enrolls straight away; an account whose face was deleted
enrolls again while that session is fresh, or through a recovery link.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.wrappers import Response

from auth_web import context, enrollment, reauth
from auth_web.auth_helpers import login_required
from auth_web.forms import ActionForm
from auth_web.reauth import fresh_auth_required

bp = Blueprint("enroll", __name__)

#: The confirmation field of the delete form (a form field, not only a script's confirm()).
CONFIRM_FIELD = "confirm"
CONFIRM_VALUE = "delete"


@bp.get("/enroll")
@login_required
@fresh_auth_required
def enroll_page() -> str:
    return render_template(
        "enroll.html",
        capture=context.settings().capture,
        form=ActionForm(),
        templates=len(g.user.templates),
        fresh_seconds=reauth.seconds_left(),
        enroll_urls={"challenge": url_for("api.enroll_challenge"), "submit": url_for("api.enroll")},
    )


@bp.get("/enroll/delete")
@login_required
@fresh_auth_required
def confirm_delete() -> str | Response:
    if not g.user.templates:
        flash(_("You have no face data to delete."), "info")
        return redirect(url_for("account.dashboard"))
    return render_template("confirm_delete.html", form=ActionForm(), templates=len(g.user.templates))


@bp.post("/enroll/delete")
@login_required
@fresh_auth_required
def delete_face() -> Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    if request.form.get(CONFIRM_FIELD) != CONFIRM_VALUE:
        return redirect(url_for("enroll.confirm_delete"))
    count = enrollment.delete_templates()
    flash(
        ngettext(
            "Your face data is deleted (%(num)d template). Until you enroll again you cannot sign in with your face.",
            "Your face data is deleted (%(num)d templates). Until you enroll again you cannot sign in with your face.",
            count,
        ),
        "info",
    )
    return redirect(url_for("account.dashboard"))
