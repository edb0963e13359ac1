"""Who is signed in, and guards for views."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import abort, g, redirect, request, session, url_for

from auth_web import context
from auth_web.models import User

F = TypeVar("F", bound=Callable[..., Any])


def sign_in(user: User, methods: Sequence[str]) -> None:
    """Start an authenticated session: a new id (rotation), nothing kept from the anonymous one.

    ``methods`` are the RFC 8176 authentication method references the ceremony used (``pwd``, ``face``, ``hwk``,
    ``swk``, ...); with ``auth_time`` (Unix seconds) they say how and when this session was authenticated, for
    re-authentication before sensitive changes and for the ID tokens of relying parties.
    """
    context.browser_session().rotate()
    session.clear()
    session["user_id"] = user.id
    session["auth_time"] = int(time.time())
    session["amr"] = list(methods)
    g.user = user


def session_auth_time() -> int | None:
    """When the signed-in session's last ceremony succeeded (Unix seconds), None without one."""
    value = session.get("auth_time")
    return value if isinstance(value, int) else None


def session_amr() -> list[str]:
    """The authentication methods of the signed-in session's last ceremony (see sign_in)."""
    value = session.get("amr")
    return [str(method) for method in value] if isinstance(value, list) else []


def sign_out() -> None:
    context.browser_session().end()
    g.user = None


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            if request.path.startswith("/api/"):
                abort(401)
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def admin_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = g.get("user")
        if user is None:
            if request.path.startswith("/api/"):
                abort(401)
            return redirect(url_for("auth.login", next=request.path))
        if not user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
