"""Re-authentication before sensitive changes: a fresh ceremony, within ``AUTH_REAUTH_MAX_AGE_SECONDS``.

A session proves how long ago its last ceremony succeeded (``session["auth_time"]``, written by
``auth_helpers.sign_in``). Changing the face, the password, the e-mail or the passkeys needs that time to be recent:
a copied session cookie, an unlocked laptop left behind, or a session that has been open all day must not be
enough to replace a factor. ``/reauth`` runs the account's own sign-in ceremony again (the login page with the
username fixed to the signed-in user) and sends the user back to where they were.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, g, jsonify, redirect, request, url_for
from flask_babel import gettext as _

from auth_web import audit, context, reasons
from auth_web.auth_helpers import session_auth_time

F = TypeVar("F", bound=Callable[..., Any])

#: The JSON ``error`` of an API call refused for want of a fresh ceremony.
REAUTH_REQUIRED = "reauth_required"
#: A session whose auth_time is this far in the future was not written by this deployment's clock.
_CLOCK_SKEW_SECONDS = 5


def is_fresh(max_age: int | None = None) -> bool:
    """True when the signed-in session's last ceremony succeeded within ``max_age`` seconds (default:
    ``AUTH_REAUTH_MAX_AGE_SECONDS``)."""
    auth_time = session_auth_time()
    if auth_time is None or g.get("user") is None:
        return False
    limit = context.settings().reauth_max_age_seconds if max_age is None else max_age
    age = time.time() - auth_time
    return -_CLOCK_SKEW_SECONDS <= age <= limit


def seconds_left(max_age: int | None = None) -> int:
    """How many seconds the session stays fresh (0 when it is not)."""
    auth_time = session_auth_time()
    if auth_time is None or not is_fresh(max_age):
        return 0
    limit = context.settings().reauth_max_age_seconds if max_age is None else max_age
    return max(0, int(auth_time + limit - time.time()))


def reauth_url(next_path: str | None = None) -> str:
    """The re-authentication page, returning to ``next_path`` (default: this request's page)."""
    return url_for("auth.reauth", next=next_path or _return_path())


def _return_path() -> str:
    """Where to come back to: the page itself for a GET; for a POST (or an API call) the page it came from,
    which the browser can GET again (a POST's form data is not replayed)."""
    if request.method == "GET" and not request.path.startswith("/api/"):
        return request.full_path.rstrip("?")
    from auth_web.blueprints.auth import safe_next

    referrer = request.referrer or ""
    host = request.host_url.rstrip("/")
    if referrer.startswith(host + "/"):
        local = referrer[len(host) :]
        if safe_next(local):
            return local
    return url_for("account.dashboard")


def fresh_auth_required(view: F) -> F:
    """The view needs a signed-in user whose last ceremony is fresh. Pages redirect to ``/reauth?next=<path>``;
    ``/api/*`` answers 403 ``{"error": "reauth_required", "reauth_url": ...}`` (the page sends the user there)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        is_api = request.path.startswith("/api/")
        if g.get("user") is None:
            if is_api:
                abort(401)
            return redirect(url_for("auth.login", next=request.path))
        if not is_fresh():
            target = reauth_url()
            audit.record(
                reasons.STEP_UP,
                reasons.FAILURE,
                reasons.NOT_FRESH,
                user_id=g.user.id,
                claimed_username=g.user.username,
                details={"path": request.path[:200]},
            )
            if is_api:
                body = {
                    "ok": False,
                    "error": REAUTH_REQUIRED,
                    "message": _("Confirm it's you first: sign in again."),
                    "reauth_url": target,
                }
                response = jsonify(body)
                response.status_code = 403
                return response
            return redirect(target)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
