"""Recovery links: a single-use, expiring way back into an account, for one purpose (enroll the face, set the
password, or both).

The token (``secrets.token_urlsafe(32)``, 256 bits) is shown once — to the admin who issued it, on the CLI, or in
the self-service mail — and only its SHA-256 is stored, so a database dump holds no usable link. Issuing a link
revokes the account's older unused links for the same purpose. Following one (a POST: a mail scanner's GET of
the link does not use it) marks it used atomically and opens a *recovery session*: not a sign-in, no access to
the account page or the API, only the steps of its purpose (``STEPS``), for ``AUTH_RECOVERY_SESSION_SECONDS``; when
the steps are done it ends, and the user signs in normally.

Self-service links (e-mail) never replace an enrolled face: for an account with face templates the mailbox can
only set a new password (``self_service_purpose``). A mailbox thief could otherwise swap the biometric for their
own; an account without templates has no biometric to protect, so its link may enroll one too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from flask import session
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from auth_web import context, reasons
from auth_web.models import RECOVERY_BOTH, RECOVERY_FACE, RECOVERY_PASSWORD, RECOVERY_PURPOSES, RecoveryLink, User

STEP_PASSWORD = "password"  # noqa: S105 (a step name)
STEP_FACE = "face"
#: What a link of each purpose lets its recovery session do.
STEPS: dict[str, tuple[str, ...]] = {
    RECOVERY_FACE: (STEP_FACE,),
    RECOVERY_PASSWORD: (STEP_PASSWORD,),
    RECOVERY_BOTH: (STEP_PASSWORD, STEP_FACE),
}
#: What a link of each purpose lets its holder do ("This link lets alice <label>."), in the request's language.
PURPOSE_LABELS = {
    RECOVERY_FACE: _l("enroll the face"),
    RECOVERY_PASSWORD: _l("set a password"),
    RECOVERY_BOTH: _l("set a password and enroll the face"),
}
CHANNEL_ADMIN = "admin"
CHANNEL_CLI = "cli"
CHANNEL_EMAIL = "email"
#: Path of a link; the token follows it.
LINK_PATH = "/recover/"
_SESSION_KEY = "recovery"
_TOKEN_MAX_LENGTH = 64


class PurposeError(ValueError):
    """Not one of RECOVERY_PURPOSES."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored for a token (hex SHA-256)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{LINK_PATH}{token}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands timezone-aware columns back naive (in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class IssuedLink:
    """A new link: ``token`` exists only here (shown once), the row keeps its hash."""

    token: str
    link: RecoveryLink
    revoked: int  # older unused links for the same purpose that this one replaced


def issue(
    db_session: Session,
    user: User,
    purpose: str,
    *,
    channel: str,
    ttl_seconds: int,
    issued_by: User | None = None,
    now: dt.datetime | None = None,
) -> IssuedLink:
    """A new link for ``user`` and ``purpose`` in the caller's transaction (the caller commits and audits)."""
    if purpose not in RECOVERY_PURPOSES:
        raise PurposeError(f"purpose must be one of {', '.join(RECOVERY_PURPOSES)}, got {purpose!r}")
    now = now or _now()
    revoked = db_session.execute(
        update(RecoveryLink)
        .where(
            RecoveryLink.user_id == user.id,
            RecoveryLink.purpose == purpose,
            RecoveryLink.used_at.is_(None),
            RecoveryLink.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    token = new_token()
    link = RecoveryLink(
        user_id=user.id,
        token_hash=token_hash(token),
        purpose=purpose,
        channel=channel,
        issued_by_user_id=issued_by.id if issued_by is not None else None,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_seconds),
    )
    db_session.add(link)
    db_session.flush()
    return IssuedLink(token, link, int(revoked or 0))


def issue_details(issued: IssuedLink) -> dict[str, Any]:
    """What the audit row of an issued link keeps (never the token)."""
    return {
        "purpose": issued.link.purpose,
        "channel": issued.link.channel,
        "link_id": issued.link.id,
        "expires_at": _aware(issued.link.expires_at).isoformat(timespec="seconds"),
        "revoked": issued.revoked,
    }


@dataclass(frozen=True)
class LinkCheck:
    """A link looked up: ``reason`` is None when it can be used, else why not (an audit reason)."""

    link: RecoveryLink | None
    user: User | None
    reason: str | None


def check(db_session: Session, token: str, now: dt.datetime | None = None) -> LinkCheck:
    """Whether the link of ``token`` can be used now, without using it."""
    if not token or len(token) > _TOKEN_MAX_LENGTH or not token.isascii():
        return LinkCheck(None, None, reasons.LINK_UNKNOWN)
    wanted = token_hash(token)
    link = db_session.scalar(select(RecoveryLink).where(RecoveryLink.token_hash == wanted))
    if link is None or not hmac.compare_digest(link.token_hash, wanted):
        return LinkCheck(None, None, reasons.LINK_UNKNOWN)
    user = db_session.get(User, link.user_id)
    now = now or _now()
    if link.used_at is not None:
        reason: str | None = reasons.LINK_USED
    elif link.revoked_at is not None:
        reason = reasons.LINK_REVOKED
    elif _aware(link.expires_at) <= now:
        reason = reasons.LINK_EXPIRED
    elif user is None or not user.is_active:
        reason = reasons.DISABLED
    else:
        reason = None
    return LinkCheck(link, user, reason)


def redeem(db_session: Session, token: str, now: dt.datetime | None = None) -> LinkCheck:
    """Use the link of ``token``: checked, then marked used in one conditional UPDATE, so that two concurrent
    uses cannot both succeed (the second finds it used). Commits."""
    now = now or _now()
    found = check(db_session, token, now)
    if found.reason is not None or found.link is None:
        return found
    marked = db_session.execute(
        update(RecoveryLink)
        .where(
            RecoveryLink.id == found.link.id,
            RecoveryLink.used_at.is_(None),
            RecoveryLink.revoked_at.is_(None),
            RecoveryLink.expires_at > now,
        )
        .values(used_at=now)
        # Not evaluated against the loaded rows in Python: SQLite hands the timestamps back naive.
        .execution_options(synchronize_session=False)
    ).rowcount
    db_session.commit()
    if marked != 1:
        return LinkCheck(found.link, found.user, reasons.LINK_USED)
    return found


def self_service_purpose(user: User) -> str:
    """The purpose of an e-mailed link: a password only when a face is enrolled (the mailbox never replaces the
    biometric), both when there is none to replace."""
    return RECOVERY_PASSWORD if user.templates else RECOVERY_BOTH


# -- the recovery session ----------------------------------------------------------------------------------------


@dataclass
class RecoveryState:
    """The narrow session a link opened: whose, for which steps, until when, and what is done."""

    user_id: int
    link_id: int
    purpose: str
    expires_at: float
    done: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> list[str]:
        return [step for step in STEPS[self.purpose] if step not in self.done]

    def allows(self, step: str) -> bool:
        return step in self.remaining


def start_session(link: RecoveryLink) -> RecoveryState:
    """A new session id (nothing kept from before: whoever was signed in in this browser is signed out) that
    holds only the recovery state: no ``user_id``, so no page or API for signed-in users serves it."""
    context.browser_session().rotate()
    session.clear()
    state = RecoveryState(
        user_id=link.user_id,
        link_id=link.id,
        purpose=link.purpose,
        expires_at=time.time() + context.settings().recovery_session_seconds,
    )
    _store(state)
    return state


def _store(state: RecoveryState) -> None:
    session[_SESSION_KEY] = {
        "user_id": state.user_id,
        "link_id": state.link_id,
        "purpose": state.purpose,
        "expires_at": state.expires_at,
        "done": list(state.done),
    }


def current(db_session: Session) -> tuple[RecoveryState, User] | None:
    """This browser's recovery session and its user, or None (none, expired, or the user gone or disabled:
    then it is ended)."""
    raw = session.get(_SESSION_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        state = RecoveryState(
            int(raw["user_id"]), int(raw["link_id"]), str(raw["purpose"]), float(raw["expires_at"]), list(raw["done"])
        )
    except (KeyError, TypeError, ValueError):
        end_session()
        return None
    user = db_session.get(User, state.user_id)
    if state.purpose not in STEPS or time.time() > state.expires_at or user is None or not user.is_active:
        end_session()
        return None
    return state, user


def finish_step(state: RecoveryState, step: str) -> bool:
    """Mark ``step`` done; True when that was the last one (the recovery session is then ended)."""
    if step not in state.done:
        state.done.append(step)
    if state.remaining:
        _store(state)
        return False
    end_session()
    return True


def end_session() -> None:
    context.browser_session().end()
