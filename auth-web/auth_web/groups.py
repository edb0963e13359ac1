"""Groups of users: the ``admin`` role plus user-defined groups, as the ``groups`` claim and Remote-Groups list."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from auth_web.models import ROLE_ADMIN, User
from auth_web.oidc_models import Group, UserGroup

#: Group names: what a relying party can match on safely (no spaces, no commas: Remote-Groups is comma-separated).
GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class GroupNameError(ValueError):
    pass


def validate_group_name(raw: str) -> str:
    name = (raw or "").strip().lower()
    if not GROUP_NAME.fullmatch(name):
        raise GroupNameError(
            _("A group name is 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.")
        )
    if name == ROLE_ADMIN:
        raise GroupNameError(_("'admin' is the administrator role, not a group: make the user an admin instead."))
    return name


def group_names(session: Session, user: User) -> list[str]:
    """The user's groups, sorted, with ``admin`` first for administrators."""
    names = sorted(
        session.scalars(
            select(Group.name).join(UserGroup, UserGroup.group_id == Group.id).where(UserGroup.user_id == user.id)
        )
    )
    return ([ROLE_ADMIN] if user.is_admin else []) + names


def set_user_groups(session: Session, user: User, wanted: list[str]) -> tuple[list[str], list[str]]:
    """Make the user's groups exactly ``wanted`` (created when new); returns (added, removed). Not committed."""
    names = sorted({validate_group_name(name) for name in wanted if name.strip()})
    existing = {group.name: group for group in session.scalars(select(Group).where(Group.name.in_(names)))}
    for name in names:
        if name not in existing:
            existing[name] = Group(name=name)
            session.add(existing[name])
    session.flush()
    current = {row.group.name: row for row in session.scalars(select(UserGroup).where(UserGroup.user_id == user.id))}
    added = [name for name in names if name not in current]
    removed = [name for name in current if name not in names]
    for name in added:
        session.add(UserGroup(user_id=user.id, group_id=existing[name].id))
    for name in removed:
        session.delete(current[name])
    return added, sorted(removed)
