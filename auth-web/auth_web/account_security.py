"""Sensitive account changes, shared by the account page, recovery links, the admin page and the CLI: the password,
the e-mail address, a face reset, an unlock, a recovery link issued — each audited — and the "Security activity"
list, read back from the audit log (there is no second store).

The views decide *whether* a change may happen (a fresh ceremony, a recovery session's purpose, an admin); the
functions here make it and record it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auth_web import audit, reasons, recovery
from auth_web.accounts import ValidationError, hash_password, validate_password
from auth_web.models import AuditEvent, FaceTemplate, RecoveryLink, User

EMAIL_MAX_LENGTH = 254
# One @, no spaces or angle brackets, a dot in the domain: what a mail server can deliver to, not RFC 5322.
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[^@\s<>\"',;]+\.[^@\s<>\"',;.]{2,}$")
ACTIVITY_LIMIT = 20


def normalize_email(raw: str) -> str:
    """The key addresses are unique by (case-insensitive)."""
    return raw.strip().casefold()


def validate_email(raw: str) -> str:
    email = (raw or "").strip()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.fullmatch(email) or ".." in email:
        raise ValidationError(_("Enter an e-mail address like name@example.com."))
    return email


def _record(
    event: str, user: User, details: dict[str, Any] | None, db_session: Session | None, client_address: str | None
) -> None:
    audit.record(
        event,
        reasons.SUCCESS,
        reasons.OK,
        user_id=user.id,
        claimed_username=user.username,
        details=details,
        db_session=db_session,
        client_address=client_address,
    )


def change_password(
    db_session: Session, user: User, password: str, *, min_length: int, channel: str, **where: Any
) -> None:
    """Set a new password (the existing policy: ``validate_password`` raises ValidationError), commit, audit.
    ``channel``: "account" or "recovery_link"; ``where``: ``client_address`` for the CLI."""
    validate_password(password, user.username, min_length)
    user.password_hash = hash_password(password)
    db_session.commit()
    _record(reasons.PASSWORD_CHANGE, user, {"channel": channel}, None, where.get("client_address"))


def change_email(db_session: Session, user: User, raw: str) -> str | None:
    """Set (or with an empty ``raw``, remove) the address; returns the new one. Raises ValidationError for a
    malformed address or one another account uses."""
    email = validate_email(raw) if raw.strip() else None
    previous = user.email
    user.email = email
    user.email_key = normalize_email(email) if email else None
    try:
        db_session.commit()
    except IntegrityError:
        db_session.rollback()
        raise ValidationError(_("That address belongs to another account.")) from None
    action = "removed" if email is None else ("added" if previous is None else "changed")
    _record(reasons.EMAIL_CHANGE, user, {"action": action}, None, None)
    return email


def reset_face(db_session: Session, user: User, *, client_address: str | None = None, commit: bool = True) -> int:
    """An admin's reset: every template removed (the caller issues the enrollment link). Returns the count."""
    count = db_session.execute(delete(FaceTemplate).where(FaceTemplate.user_id == user.id)).rowcount or 0
    db_session.expire(user, ["templates"])
    in_transaction = db_session if not commit else None
    if commit:
        db_session.commit()
    _record(reasons.ADMIN_RESET_FACE, user, {"templates": count}, in_transaction, client_address)
    return int(count)


def issue_link(
    db_session: Session,
    user: User,
    purpose: str,
    *,
    channel: str,
    ttl_seconds: int,
    issued_by: User | None = None,
    client_address: str | None = None,
    in_request: bool = True,
) -> recovery.IssuedLink:
    """A new recovery link (older unused ones for the purpose revoked), committed and audited."""
    issued = recovery.issue(db_session, user, purpose, channel=channel, ttl_seconds=ttl_seconds, issued_by=issued_by)
    details = recovery.issue_details(issued)
    if in_request:
        db_session.commit()
        _record(reasons.RECOVERY_ISSUE, user, details, None, client_address)
    else:  # the CLI: the row joins the command's transaction
        _record(reasons.RECOVERY_ISSUE, user, details, db_session, client_address)
        db_session.commit()
    return issued


def pending_links(db_session: Session, user: User) -> list[RecoveryLink]:
    """The user's links that are neither used nor revoked (possibly expired), newest first."""
    statement = (
        select(RecoveryLink)
        .where(RecoveryLink.user_id == user.id, RecoveryLink.used_at.is_(None), RecoveryLink.revoked_at.is_(None))
        .order_by(RecoveryLink.id.desc())
    )
    return list(db_session.scalars(statement))


# -- "Security activity" ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """One line of the account page's list."""

    when: Any  # datetime
    what: str
    where: str


_LABELS = {
    reasons.ENROLL_DELETE: _l("Face data deleted"),
    reasons.PASSWORD_SET: _l("Password set by an operator"),
    reasons.RECOVERY_USE: _l("Recovery link used"),
    reasons.ADMIN_RESET_FACE: _l("Face data reset by an administrator"),
    reasons.ADMIN_UNLOCK: _l("Failed sign-ins cleared by an administrator"),
    reasons.ADMIN_DISABLE: _l("Account disabled by an administrator"),
    reasons.ADMIN_ENABLE: _l("Account enabled by an administrator"),
    reasons.ADMIN_CREATE: _l("Made an administrator (command line)"),
    reasons.PASSKEY_ADD: _l("Passkey added"),
    reasons.PASSKEY_REMOVE: _l("Passkey removed"),
    reasons.PASSKEY_RENAME: _l("Passkey renamed"),
}
_ISSUED_BY = {
    "email": _l("sent by e-mail"),
    "cli": _l("by an operator"),
    "admin": _l("by an administrator"),
}


def _label(row: AuditEvent) -> str:
    details = row.details or {}
    if row.event == reasons.ENROLL:
        if details.get("channel") == "recovery_link":
            return _("Face enrolled with a recovery link")
        return _("Face re-enrolled") if details.get("replaced") else _("Face enrolled")
    if row.event == reasons.PASSWORD_CHANGE:
        if details.get("channel") == "recovery_link":
            return _("Password set with a recovery link")
        return _("Password changed")
    if row.event == reasons.EMAIL_CHANGE:
        action = str(details.get("action"))
        if action == "added":
            return _("E-mail address added")
        return _("E-mail address removed") if action == "removed" else _("E-mail address changed")
    if row.event == reasons.RECOVERY_ISSUE:
        label = recovery.PURPOSE_LABELS.get(str(details.get("purpose")))
        purpose = str(label) if label is not None else _("recover the account")
        by = _ISSUED_BY.get(str(details.get("channel")))
        if by is None:
            return _("Recovery link to %(purpose)s issued", purpose=purpose)
        return _("Recovery link to %(purpose)s issued %(by)s", purpose=purpose, by=by)
    label = _LABELS.get(row.event)
    return str(label) if label is not None else row.event.replace("_", " ").capitalize()


def _where(row: AuditEvent, user: User) -> str:
    if row.client_address == "cli":
        return _("operator command line")
    place = row.client_address or _("unknown address")
    if row.actor_user_id is not None and row.actor_user_id != user.id:
        return _("%(place)s (an administrator)", place=place)
    return place


def security_activity(db_session: Session, user: User, limit: int = ACTIVITY_LIMIT) -> list[Activity]:
    """The account's sensitive changes from the audit log, newest first."""
    statement = (
        select(AuditEvent)
        .where(
            AuditEvent.user_id == user.id,
            AuditEvent.event.in_(reasons.SECURITY_EVENTS),
            AuditEvent.result == reasons.SUCCESS,
        )
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return [Activity(row.created_at, _label(row), _where(row, user)) for row in db_session.scalars(statement)]
