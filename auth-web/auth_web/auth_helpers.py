"""Who is signed in, and guards for views."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, g, redirect, request, session, url_for

from auth_web import context
from auth_web.models import User

F = TypeVar("F", bound=Callable[..., Any])


def sign_in(user: User) -> None:
    """Start an authenticated session: a new id (rotation), nothing kept from the anonymous one."""
    context.browser_session().rotate()
    session.clear()
    session["user_id"] = user.id
    session["signed_in_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    g.user = user


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
