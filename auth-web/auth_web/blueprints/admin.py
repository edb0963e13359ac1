"""Administration (role admin): users (search, disable/enable, delete) and the audit log."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from auth_web import account_security, audit, context, reasons, recovery
from auth_web.accounts import normalize_username
from auth_web.auth_helpers import admin_required
from auth_web.db import db
from auth_web.forms import ActionForm
from auth_web.models import (
    RECOVERY_FACE,
    RECOVERY_PURPOSES,
    STATUS_ACTIVE,
    STATUS_DISABLED,
    AuditEvent,
    FaceTemplate,
    User,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 50
# Beyond any real table, and far inside Postgres' bigint OFFSET and int4 ids (larger values would fail in the
# database, which the error handlers would report as "database unavailable").
MAX_PAGE = 100_000
MAX_ID = 2**31 - 1


def _page() -> int:
    return min(MAX_PAGE, max(1, request.args.get("page", 1, type=int) or 1))


def _arg(name: str, limit: int) -> str:
    """A query filter, trimmed; a NUL byte (Postgres refuses it in text) or another control character is a 400."""
    value = request.args.get(name, "").strip()[:limit]
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        abort(400)
    return value


@bp.get("/")
@admin_required
def home() -> Response:
    return redirect(url_for("admin.users"))


@bp.get("/users")
@admin_required
def users() -> str:
    query_text = _arg("q", 64)
    page = _page()
    template_counts = (
        select(FaceTemplate.user_id, func.count(FaceTemplate.id).label("n")).group_by(FaceTemplate.user_id).subquery()
    )
    statement = (
        select(User, func.coalesce(template_counts.c.n, 0))
        .outerjoin(template_counts, template_counts.c.user_id == User.id)
        .order_by(User.username_key)
    )
    if query_text:
        escaped = normalize_username(query_text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(User.username_key.like(f"%{escaped}%", escape="\\"))
    rows = db().execute(statement.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    return render_template(
        "admin/users.html",
        rows=rows[:PAGE_SIZE],
        has_next=len(rows) > PAGE_SIZE,
        page=page,
        q=query_text,
        form=ActionForm(),
    )


def _target(user_id: int) -> User:
    if not ActionForm().validate_on_submit():
        abort(400)
    user = db().get(User, user_id) if 0 < user_id <= MAX_ID else None
    if user is None:
        abort(404)
    if user.id == g.user.id:
        flash(_("You cannot do that to your own account."), "error")
        abort(redirect(url_for("admin.users")))
    return user


@bp.post("/users/<int:user_id>/disable")
@admin_required
def disable(user_id: int) -> Response:
    user = _target(user_id)
    user.status = STATUS_DISABLED
    db().commit()
    ended = context.sessions().end_all(user.id)
    audit.record(
        reasons.ADMIN_DISABLE,
        reasons.SUCCESS,
        reasons.OK,
        user_id=user.id,
        claimed_username=user.username,
        details={"sessions_ended": ended},
    )
    flash(_("%(name)s is disabled and signed out everywhere.", name=user.username), "success")
    return redirect(request.referrer or url_for("admin.users"))


@bp.post("/users/<int:user_id>/enable")
@admin_required
def enable(user_id: int) -> Response:
    user = _target(user_id)
    user.status = STATUS_ACTIVE
    db().commit()
    # Failed logins for the name are forgotten too (every address's delays and locks for it).
    context.failure_log().forget_username(user.username)
    audit.record(reasons.ADMIN_ENABLE, reasons.SUCCESS, reasons.OK, user_id=user.id, claimed_username=user.username)
    flash(_("%(name)s is enabled.", name=user.username), "success")
    return redirect(request.referrer or url_for("admin.users"))


@bp.post("/users/<int:user_id>/delete")
@admin_required
def delete(user_id: int) -> Response:
    user = _target(user_id)
    username, template_count = user.username, len(user.templates)
    # Sessions first: a deleted user must not stay signed in anywhere.
    ended = context.sessions().end_all(user.id)
    db().delete(user)  # templates go with it (ON DELETE CASCADE + ORM cascade)
    db().commit()
    audit.record(
        reasons.ADMIN_DELETE,
        reasons.SUCCESS,
        reasons.OK,
        user_id=user_id,
        claimed_username=username,
        details={"templates_deleted": template_count, "sessions_ended": ended},
    )
    flash(_("%(name)s is deleted, with their face data and sessions.", name=username), "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/unlock")
@admin_required
def unlock(user_id: int) -> Response:
    """Clear the user's failed sign-ins (every address's delays and locks for the name)."""
    user = _target(user_id)
    cleared = context.failure_log().forget_username(user.username)
    audit.record(
        reasons.ADMIN_UNLOCK,
        reasons.SUCCESS,
        reasons.OK,
        user_id=user.id,
        claimed_username=user.username,
        details={"keys_cleared": cleared},
    )
    flash(_("%(name)s's failed sign-ins are cleared: they can sign in again at once.", name=user.username), "success")
    return redirect(request.referrer or url_for("admin.users"))


@bp.post("/users/<int:user_id>/reset-face")
@admin_required
def reset_face(user_id: int) -> str | Response:
    """Remove the user's templates, sign them out, and issue an enrollment link (shown once, on this page)."""
    user = _target(user_id)
    removed = account_security.reset_face(db(), user)
    ended = context.sessions().end_all(user.id)
    note = _("%(templates)s face templates removed, %(sessions)s sessions ended.", templates=removed, sessions=ended)
    if not user.is_active:
        flash(
            _(
                "%(name)s: %(note)s No enrollment link: the account is disabled (enable it first).",
                name=user.username,
                note=note,
            ),
            "info",
        )
        return redirect(url_for("admin.users"))
    return _link_page(user, _issue(user, RECOVERY_FACE), note)


@bp.post("/users/<int:user_id>/recovery-link")
@admin_required
def recovery_link(user_id: int) -> str | Response:
    user = _target(user_id)
    purpose = request.form.get("purpose", "")
    if purpose not in RECOVERY_PURPOSES:
        abort(400)
    if not user.is_active:
        # Its link would be refused when followed: say so now instead of handing out a dead end.
        flash(_("%(name)s is disabled: enable the account first, then issue the link.", name=user.username), "error")
        return redirect(url_for("admin.users"))
    return _link_page(user, _issue(user, purpose), "")


def _issue(user: User, purpose: str) -> recovery.IssuedLink:
    return account_security.issue_link(
        db(),
        user,
        purpose,
        channel=recovery.CHANNEL_ADMIN,
        ttl_seconds=context.settings().recovery_link_ttl_seconds,
        issued_by=g.user,
    )


def _link_page(user: User, issued: recovery.IssuedLink, note: str) -> str:
    settings = context.settings()
    base = settings.public_url or request.host_url
    return render_template(
        "admin/link.html",
        target=user,
        url=recovery.link_url(base, issued.token),
        purpose=str(recovery.PURPOSE_LABELS[issued.link.purpose]),
        hours=max(1, settings.recovery_link_ttl_seconds // 3600),
        revoked=issued.revoked,
        note=note,
    )


@bp.get("/flash")
@admin_required
def flash_calibration() -> str:
    """The flash calibration page: its script takes a capture through /api/admin/flash/* and plots the result."""
    config = context.settings()
    return render_template("admin/flash.html", flash_enabled=config.flash_enabled, flash=config.flash)


@bp.get("/audit")
@admin_required
def audit_log() -> str:
    filters = {
        "username": _arg("username", 64),
        "event": _arg("event", 32),
        "result": _arg("result", 16),
        "reason": _arg("reason", 64),
        "user_id": _arg("user_id", 12),
    }
    page = _page()
    statement = select(AuditEvent).order_by(AuditEvent.id.desc())
    if filters["username"]:
        statement = statement.where(func.lower(AuditEvent.claimed_username) == normalize_username(filters["username"]))
    if filters["event"]:
        statement = statement.where(AuditEvent.event == filters["event"])
    if filters["result"]:
        statement = statement.where(AuditEvent.result == filters["result"])
    if filters["reason"]:
        statement = statement.where(AuditEvent.reason == filters["reason"].upper())
    if filters["user_id"].isascii() and filters["user_id"].isdigit() and int(filters["user_id"]) <= MAX_ID:
        statement = statement.where(AuditEvent.user_id == int(filters["user_id"]))
    rows = db().scalars(statement.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    events = db().scalars(select(AuditEvent.event).distinct().order_by(AuditEvent.event)).all()
    return render_template(
        "admin/audit.html",
        rows=rows[:PAGE_SIZE],
        has_next=len(rows) > PAGE_SIZE,
        page=page,
        filters=filters,
        events=events,
    )
