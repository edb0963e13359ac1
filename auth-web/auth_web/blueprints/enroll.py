"""The enrollment page, and deleting one's face data."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, url_for
from werkzeug.wrappers import Response

from auth_web import context, enrollment
from auth_web.auth_helpers import login_required
from auth_web.forms import ActionForm

bp = Blueprint("enroll", __name__)


@bp.get("/enroll")
@login_required
def enroll_page() -> str:
    return render_template(
        "enroll.html", capture=context.settings().capture, form=ActionForm(), templates=len(g.user.templates)
    )


@bp.post("/enroll/delete")
@login_required
def delete_face() -> Response:
    if ActionForm().validate_on_submit():
        count = enrollment.delete_templates()
        flash(f"Your face data is deleted ({count} templates). Enroll again to sign in with your face.", "info")
    return redirect(url_for("account.dashboard"))
