"""Register, the login page (the capture itself goes through /api/login), logout."""

from __future__ import annotations

import datetime as dt
from urllib.parse import unquote, urljoin, urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from auth_web import audit, context, i18n, reasons
from auth_web.accounts import ValidationError, hash_password, normalize_username, validate_password, validate_username
from auth_web.auth_helpers import sign_in, sign_out
from auth_web.db import db
from auth_web.forms import ActionForm, RegisterForm
from auth_web.models import User

bp = Blueprint("auth", __name__)


@bp.get("/")
def index() -> Response:
    return redirect(url_for("account.dashboard" if g.get("user") else "auth.login"))


#: Only for resolving a candidate ``next``: a local path must stay on this origin.
_NEXT_ORIGIN = "https://faceauth.invalid"
_NEXT_MAX_LENGTH = 200


def safe_next(raw: str | None) -> str | None:
    """A local path to go to after signing in; anything a browser could take off the site is dropped.

    The page hands the value to ``location``, whose URL parser (WHATWG) removes tabs and newlines anywhere,
    strips leading control characters and spaces, and reads ``\\`` as ``/``: ``/\\t/evil.example`` becomes
    ``//evil.example``, another host. So: printable ASCII only (what ``url_for`` makes), no backslash, no
    control character also after percent-decoding, a single leading ``/``, and the value joined to a fixed
    origin must keep that origin.
    """
    if not raw or len(raw) > _NEXT_MAX_LENGTH or not raw.isascii() or not raw.isprintable():
        return None
    decoded = raw
    for _round in range(3):  # %2509 → %09 → tab: decode until nothing changes (a few rounds are plenty)
        decoded, previous = unquote(decoded), decoded
        if decoded == previous:
            break
    for candidate in (raw, decoded):
        if "\\" in candidate or any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in candidate):
            return None
        if not candidate.startswith("/") or candidate.startswith("//"):
            return None
    target = urlsplit(urljoin(_NEXT_ORIGIN + "/", raw))
    same_origin = f"{target.scheme}://{target.netloc}" == _NEXT_ORIGIN
    if not same_origin or not target.path.startswith("/") or target.path.startswith("//"):
        return None
    return raw


@bp.get("/login")
def login() -> str | Response:
    if g.get("user") is not None:
        return redirect(url_for("account.dashboard"))
    return render_template(
        "login.html",
        capture=context.settings().capture,
        form=ActionForm(),
        next_url=safe_next(request.args.get("next")),
    )


@bp.get("/reauth")
def reauth() -> str | Response:
    """Confirm it's you: the login page and flow with the username fixed to the signed-in user. Its success signs
    the same user in again (sign_in: a new session id and auth_time) and the page goes on to ``next``."""
    next_url = safe_next(request.args.get("next")) or url_for("account.dashboard")
    if g.get("user") is None:
        return redirect(url_for("auth.login", next=next_url))
    return render_template(
        "login.html",
        capture=context.settings().capture,
        form=ActionForm(),
        next_url=next_url,
        fixed_username=g.user.username,
    )


@bp.route("/register", methods=["GET", "POST"])
def register() -> str | Response:
    settings = context.settings()
    if not settings.allow_registration:
        return render_template(
            "error.html",
            status=403,
            title=_("Registration is closed"),
            message=_("Ask your administrator for an account."),
        ), 403  # type: ignore[return-value]
    if g.get("user") is not None:
        return redirect(url_for("account.dashboard"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            username = validate_username(form.username.data or "")
        except ValidationError as error:
            form.username.errors.append(i18n.rule_message(error))  # type: ignore[union-attr]
        else:
            try:
                password = validate_password(form.password.data or "", username, settings.password_min_length)
            except ValidationError as error:
                form.password.errors.append(i18n.rule_message(error))  # type: ignore[union-attr]
            else:
                user = _create_user(username, password)
                if user is None:
                    form.username.errors.append(_("That username is taken. Choose another one."))  # type: ignore[union-attr]
                else:
                    audit.record(
                        reasons.REGISTER, reasons.SUCCESS, reasons.OK, user_id=user.id, claimed_username=username
                    )
                    sign_in(user, ["pwd"])
                    flash(_("Your account is ready. Now add your face."), "success")
                    return redirect(url_for("enroll.enroll_page"))
    status = 400 if form.is_submitted() else 200
    return render_template("register.html", form=form, settings=settings), status  # type: ignore[return-value]


def _create_user(username: str, password: str) -> User | None:
    session = db()
    if context.find_user(session, username) is not None:
        return None
    # The new account is signed in straight away (register() below), which is its first sign-in.
    user = User(
        username=username,
        username_key=normalize_username(username),
        password_hash=hash_password(password),
        last_login_at=dt.datetime.now(dt.UTC),
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError:  # registered concurrently
        session.rollback()
        return None
    return user


@bp.post("/logout")
def logout() -> Response:
    if ActionForm().validate_on_submit() and g.get("user") is not None:
        audit.record(reasons.LOGOUT, reasons.SUCCESS, reasons.OK, user_id=g.user.id, claimed_username=g.user.username)
        sign_out()
        flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))
