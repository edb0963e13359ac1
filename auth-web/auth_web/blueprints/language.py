"""The language switcher: ``GET /language/<code>?next=/path`` keeps the choice in the ``lang`` cookie and goes back.

A plain link (works without JavaScript). A GET that changes something is safe here: it only changes how the
pages are worded for this browser, and ``next`` goes through ``safe_next`` (a local path, never another site),
so a link from elsewhere can at most switch someone's language.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from werkzeug.wrappers import Response

from auth_web import context, i18n
from auth_web.blueprints.auth import safe_next

bp = Blueprint("language", __name__)


@bp.get("/language/<code>")
def choose(code: str) -> Response:
    if code not in i18n.languages():
        abort(404)
    response = redirect(safe_next(request.args.get("next")) or url_for("auth.index"))
    response.set_cookie(
        i18n.COOKIE,
        code,
        max_age=i18n.COOKIE_MAX_AGE,
        secure=context.settings().force_secure_cookies,
        httponly=True,
        samesite="Lax",
    )
    return response
