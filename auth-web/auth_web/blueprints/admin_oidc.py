"""Administration of the OpenID Connect clients and of groups (role admin): the same operations as
``python -m auth_web client ...``, and setting a user's groups (audited)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from auth_web import audit, context, oidc_clients, reasons
from auth_web.auth_helpers import admin_required
from auth_web.db import db
from auth_web.forms import ActionForm
from auth_web.groups import GroupNameError, group_names, set_user_groups
from auth_web.oidc_models import Group, OAuthClient, UserGroup

bp = Blueprint("admin_oidc", __name__, url_prefix="/admin")

_MAX_FIELD = 4000


def _field(name: str) -> str:
    value = request.form.get(name, "")
    if len(value) > _MAX_FIELD or any(ord(c) < 0x20 and c not in "\r\n\t" for c in value):
        abort(400)
    return value


def _lines(name: str) -> list[str]:
    return [line.strip() for line in _field(name).replace(",", "\n").splitlines() if line.strip()]


@bp.get("/clients")
@admin_required
def clients() -> str:
    return render_template("admin/clients.html", clients=oidc_clients.list_clients(db()), form=ActionForm())


@bp.post("/clients")
@admin_required
def create_client() -> str | Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db()
    try:
        created = oidc_clients.create_client(
            session,
            name=_field("name"),
            client_id=_field("client_id").strip() or None,
            redirect_uris=_lines("redirect_uris"),
            post_logout_redirect_uris=_lines("post_logout_redirect_uris"),
            auth_method=_field("auth_method") or "client_secret_basic",
            scopes=_field("scopes") or oidc_clients.DEFAULT_SCOPES,
            first_party=request.form.get("first_party") == "on",
            refresh_tokens=request.form.get("refresh_tokens") == "on",
        )
    except oidc_clients.ClientError as error:
        session.rollback()
        flash(str(error), "error")
        return redirect(url_for("admin_oidc.clients"))
    session.commit()
    _audit(reasons.CLIENT_CREATE, created.client.client_id)
    return render_template("admin/client_secret.html", client=created.client, secret=created.secret)


def _client(client_pk: int) -> OAuthClient:
    if not ActionForm().validate_on_submit():
        abort(400)
    row = db().get(OAuthClient, client_pk) if 0 < client_pk < 2**31 else None
    if row is None:
        abort(404)
    return row


@bp.post("/clients/<int:client_pk>/delete")
@admin_required
def delete_client(client_pk: int) -> Response:
    row = _client(client_pk)
    client_id = row.client_id
    db().delete(row)
    db().commit()
    _audit(reasons.CLIENT_DELETE, client_id)
    flash(_("Client %(client)s is deleted, with its consents and refresh tokens.", client=client_id), "success")
    return redirect(url_for("admin_oidc.clients"))


@bp.post("/clients/<int:client_pk>/rotate-secret")
@admin_required
def rotate_client_secret(client_pk: int) -> str | Response:
    row = _client(client_pk)
    try:
        secret = oidc_clients.rotate_secret(db(), row)
    except oidc_clients.ClientError as error:
        flash(str(error), "error")
        return redirect(url_for("admin_oidc.clients"))
    db().commit()
    _audit(reasons.CLIENT_ROTATE_SECRET, row.client_id)
    return render_template("admin/client_secret.html", client=row, secret=secret)


@bp.get("/groups")
@admin_required
def groups() -> str:
    rows = (
        db()
        .execute(
            select(Group.name, UserGroup.user_id).join(UserGroup, UserGroup.group_id == Group.id).order_by(Group.name)
        )
        .all()
    )
    from auth_web.models import User

    members: dict[str, list[str]] = {}
    names = {user.id: user.username for user in db().scalars(select(User).where(User.id.in_({r[1] for r in rows})))}
    for group_name, user_id in rows:
        members.setdefault(group_name, []).append(names.get(user_id, "?"))
    return render_template("admin/groups.html", members=members, form=ActionForm())


@bp.post("/groups")
@admin_required
def set_groups() -> Response:
    """Set a user's groups to exactly the list given (comma- or line-separated); new groups are created."""
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db()
    user = context.find_user(session, _field("username").strip())
    if user is None:
        flash(_("No such user."), "error")
        return redirect(url_for("admin_oidc.groups"))
    try:
        added, removed = set_user_groups(session, user, _lines("groups"))
    except GroupNameError as error:
        session.rollback()
        flash(str(error), "error")
        return redirect(url_for("admin_oidc.groups"))
    session.commit()
    audit.record(
        reasons.ADMIN_SET_GROUPS,
        reasons.SUCCESS,
        reasons.OK,
        user_id=user.id,
        claimed_username=user.username,
        details={"added": added, "removed": removed},
    )
    names = ", ".join(group_names(session, user))
    if names:
        flash(_("%(name)s's groups: %(groups)s.", name=user.username, groups=names), "success")
    else:
        flash(_("%(name)s's groups: none.", name=user.username), "success")
    return redirect(url_for("admin_oidc.groups"))


def _audit(event: str, client_id: str) -> None:
    audit.record(event, reasons.SUCCESS, reasons.OK, details={"client": client_id})
