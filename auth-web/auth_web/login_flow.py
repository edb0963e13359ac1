"""The login as a flow of steps: a first factor (password or passkey) checked before the camera starts, then the face.

``AUTH_FACTORS`` picks the flow (``FLOWS``): a list of step names. A step is an object with one small interface
(``Step``): its name, and ``check`` that returns a ``StepOutcome`` (passed or not, the audit reason, the RFC 8176
methods it proves). The steps are ``PASSWORD`` (here), ``passkeys.PASSKEY`` and the face (``login.attempt``, the
capture ceremony). What every first factor shares — the throttle, the audit row, the generic refusal, the plain
"no face data" answer once the factor is right, and the pre-auth state — is ``first_factor_result``.

The pre-auth state (``PreAuth``) lives in the server-side session: whose account, which steps passed, when, and
the face challenge it is bound to. It expires with the challenge TTL and never signs anyone in by itself: only the
flow's last step calls ``sign_in``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from flask import request, session
from flask_babel import LazyString, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from auth_web import audit, context, i18n, reasons
from auth_web import metrics as auth_metrics
from auth_web.accounts import ADDRESS, PAIR, ThrottleVerdict, ValidationError, validate_username, verify_password
from auth_web.ceremony import Refusal, Refused
from auth_web.db import db
from auth_web.errors import RATE_LIMITED_MESSAGE
from auth_web.models import User

#: Each policy's steps, in order; the face is always the last one.
FLOWS: dict[str, tuple[str, ...]] = {
    "password+face": ("password", "face"),
    "passkey+face": ("passkey", "face"),
    "face": ("face",),
}
PASSWORD = "password"  # noqa: S105 (a step name)
PASSKEY = "passkey"
FACE = "face"

SESSION_KEY = "login_flow"

#: Before the first factor is right nothing is revealed: one message for a wrong password, an unknown user, an
#: account without a password. (A lock is told, with its wait, before any factor is checked: ``held_back``.)
FIRST_FACTOR_FAILED = _l("We couldn't sign you in. Check your username and password and try again.")
PASSKEY_FAILED = _l("We couldn't sign you in with that passkey. Try again, or use another passkey.")
STEP_MISSING = _l("This sign-in attempt expired or was already used. Please start again.")
ENTER_USERNAME = _l("Enter your username.")


def dead_end_message(reason: str, self_service: bool) -> str:
    """What the user is told when the first factor is right but the face step cannot follow: what happened and
    what to do (never a camera that can only fail)."""
    if reason == reasons.DISABLED:
        return _("Your password is right, but this account is disabled. Ask your administrator to enable it.")
    way_back = (
        _("Use “Forgot password or face?” to get a link by e-mail, or ask your administrator for a recovery link.")
        if self_service
        else _("Ask your administrator for a recovery link to set up your face again.")
    )
    return _(
        "Your sign-in details are right, but this account has no face data, so face sign-in cannot finish. "
        "%(way_back)s",
        way_back=way_back,
    )


#: After the first factor is right, a failed face check says what went wrong, from the audit reason (decision.py's
#: codes for the proto's reasons). Before that, and in ``face``, the message stays generic (login.GENERIC_FAILURE).
_NOT_LIVE = _l(
    "The capture did not look like a live person in front of the camera. Look straight at the camera in good, even "
    "light, follow the prompt, and try again."
)
_INCOMPLETE = _l("The capture was incomplete. Keep this page open and in front while it films, and try again.")
FACE_ADVICE: dict[str, LazyString] = {
    "LIVENESS_CHALLENGE_NOT_MET": _l(
        "We didn't see you follow the prompt. Blink or turn your head when it asks you to."
    ),
    "LIVENESS_NO_FACE": _l("We couldn't find your face. Keep it inside the oval, facing the camera, in good light."),
    "LIVENESS_MULTIPLE_FACES": _l("More than one person was in view. Make sure only you are in front of the camera."),
    "LIVENESS_TRACK_DISCONTINUOUS": _l(
        "Your face left the oval during the capture. Keep it inside the oval until done."
    ),
    "LIVENESS_FLASH_NOT_REFLECTED": _l(
        "We couldn't see the screen's colours on your face. Face the screen from closer, turn its brightness up, and "
        "avoid strong light behind you."
    ),
    "LIVENESS_SPOOF_SUSPECTED": _NOT_LIVE,
    "LIVENESS_STATIC_CAPTURE": _NOT_LIVE,
    "LIVENESS_PLANAR_MOTION": _NOT_LIVE,
    "LIVENESS_SYNTHETIC_MOTION": _NOT_LIVE,
    "LIVENESS_TOO_FEW_FRAMES": _INCOMPLETE,
    "LIVENESS_CAPTURE_TOO_SHORT": _INCOMPLETE,
    "LIVENESS_FRAME_TIMING": _INCOMPLETE,
    reasons.CHALLENGE_LATE: _INCOMPLETE,
    reasons.CAPTURE_TOO_EARLY: _INCOMPLETE,
    reasons.BAD_CAPTURE: _INCOMPLETE,
    "VERIFY_NO_MATCH": _l("Your face did not match the face enrolled for this account."),
    "VERIFY_INCONSISTENT_IDENTITY": _l(
        "More than one face was seen during the capture. Make sure only you are in view."
    ),
    "VERIFY_NOT_ENOUGH_FACES": _l("We couldn't see your face clearly enough. Come a little closer and use more light."),
    reasons.TEMPLATES_OUTDATED: _l(
        "Your face data was made by an older version of the face model. Ask your administrator for a recovery link "
        "to enroll again."
    ),
}


def face_advice(reason: str, generic: str | LazyString) -> str | LazyString:
    """The plain words for a failed face check after the first factor passed (``generic`` for anything else)."""
    return FACE_ADVICE.get(reason, generic)


@dataclass(frozen=True)
class StepOutcome:
    """What a step decided: ``passed``, the audit ``reason`` and the RFC 8176 methods it proves."""

    passed: bool
    reason: str
    amr: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


class Step(Protocol):
    """One factor of the login flow."""

    name: str

    def check(self, user: User | None, evidence: Any) -> StepOutcome:
        """Decide the factor for ``user`` (None: the claimed account does not exist) from the client's evidence."""
        ...


@dataclass(frozen=True)
class PasswordStep:
    """The password: one argon2 verification on every path (a dummy hash for unknown users and accounts without
    a password), so the time of the answer does not say whether the account exists."""

    name: str = PASSWORD

    def check(self, user: User | None, evidence: Any) -> StepOutcome:
        password = evidence if isinstance(evidence, str) else ""
        matches = verify_password(user.password_hash if user is not None else None, password)
        if user is None:
            return StepOutcome(False, reasons.UNKNOWN_USER)
        if not matches:
            return StepOutcome(False, reasons.NO_PASSWORD_SET if user.password_hash is None else reasons.BAD_PASSWORD)
        return StepOutcome(True, reasons.OK, ("pwd",))


PASSWORD_STEP = PasswordStep()


@dataclass(frozen=True)
class PreAuth:
    """The steps a browser session has passed towards signing in (never a sign-in by itself)."""

    user_id: int
    claimed: str
    passed: tuple[str, ...]
    amr: tuple[str, ...]
    at: float
    nonce: str = ""  # the face challenge this state is bound to, once issued
    face_failed: bool = False

    def to_session(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "claimed": self.claimed,
            "passed": list(self.passed),
            "amr": list(self.amr),
            "at": self.at,
            "nonce": self.nonce,
            "face_failed": self.face_failed,
        }

    @classmethod
    def from_session(cls, raw: object) -> PreAuth | None:
        if not isinstance(raw, dict):
            return None
        try:
            return cls(
                int(raw["user_id"]),
                str(raw["claimed"]),
                tuple(str(step) for step in raw["passed"]),
                tuple(str(method) for method in raw["amr"]),
                float(raw["at"]),
                str(raw.get("nonce", "")),
                bool(raw.get("face_failed", False)),
            )
        except (KeyError, TypeError, ValueError):
            return None


# -- decisions (pure) ---------------------------------------------------------------------------------------------


def next_step(flow: Sequence[str], passed: Sequence[str]) -> str | None:
    """The step that comes after ``passed``, or None when the flow is complete or ``passed`` is not where the flow
    starts (steps out of order count for nothing)."""
    if tuple(passed) != tuple(flow[: len(passed)]) or len(passed) >= len(flow):
        return None
    return flow[len(passed)]


def is_expired(preauth: PreAuth, now: float, ttl_seconds: float) -> bool:
    return not (preauth.at - 5 <= now <= preauth.at + ttl_seconds)


def signed_in_amr(*methods: Sequence[str]) -> list[str]:
    """The session's amr from the methods of each step passed: each once, in order, and ``mfa`` when two or more
    independent factors were used (RFC 8176)."""
    amr: list[str] = []
    for group in methods:
        for method in group:
            if method not in amr and method != "mfa":
                amr.append(method)
    if len(amr) >= 2:
        amr.append("mfa")
    return amr


def passkey_amr(backed_up: bool) -> tuple[str, ...]:
    """A synced (backed-up) passkey is a software key (``swk``), one bound to its device a hardware key (``hwk``)."""
    return ("swk",) if backed_up else ("hwk",)


def fallback_allowed(allowed_by_policy: bool, preauth: PreAuth | None, has_passkey: bool) -> bool:
    """May the user use a passkey instead of the face? Only when the operator allows it, the first factor of this
    flow passed, the face check then failed, and the account has a passkey."""
    return bool(allowed_by_policy and preauth is not None and preauth.passed and preauth.face_failed and has_passkey)


# -- the pre-auth state in the session ----------------------------------------------------------------------------


def load() -> PreAuth | None:
    """This browser session's pre-auth state, or None (none, unreadable or expired — an expired one is dropped)."""
    preauth = PreAuth.from_session(session.get(SESSION_KEY))
    if preauth is None:
        session.pop(SESSION_KEY, None)
        return None
    if is_expired(preauth, time.time(), context.settings().challenge_ttl_seconds):
        session.pop(SESSION_KEY, None)
        return None
    return preauth


def save(preauth: PreAuth) -> None:
    session[SESSION_KEY] = preauth.to_session()


def clear() -> None:
    session.pop(SESSION_KEY, None)


def bound_to(nonce: str, user_id: int | None) -> PreAuth | None:
    """The pre-auth state of the face challenge ``nonce`` (issued for ``user_id``), or None."""
    preauth = load()
    if preauth is None or not preauth.nonce or preauth.nonce != nonce or preauth.user_id != user_id:
        return None
    return preauth


def face_failed(preauth: PreAuth) -> PreAuth:
    """The state after a failed face check: the challenge is spent; the fallback may follow within the TTL."""
    updated = replace(preauth, nonce="", face_failed=True)
    save(updated)
    return updated


def current_flow() -> tuple[str, ...]:
    return FLOWS[context.settings().factors]


# -- what every first factor shares -------------------------------------------------------------------------------


def validated_username(username_raw: object) -> str | Refused:
    """The claimed username, or the refusal of a name no account can have (nothing is revealed: every account's
    name follows the username rules, so breaking them says nothing about any account; it also keeps NUL bytes,
    control characters and surrogates out of Redis, Postgres and the audit log)."""
    if not isinstance(username_raw, str) or not username_raw.strip():
        return Refused(Refusal.BAD_REQUEST, reasons.BAD_REQUEST, ENTER_USERNAME)
    try:
        return validate_username(username_raw)
    except ValidationError as error:
        return Refused(Refusal.BAD_USERNAME, reasons.BAD_USERNAME, i18n.rule_message(error))


def client_address() -> str:
    """The client's address (the gateway's X-Forwarded-For already applied by the trusted-proxy fix)."""
    return request.remote_addr or ""


def throttled(verdict: ThrottleVerdict, claimed: str) -> Refused:
    """A soft delay: 429 with Retry-After at once, no work done and no failure counted."""
    seconds = max(1, math.ceil(verdict.retry_after))
    auth_metrics.metrics().rate_limited.labels(endpoint=request.endpoint or "unmatched").inc()
    audit.record(
        reasons.RATE_LIMIT,
        reasons.FAILURE,
        reasons.RATE_LIMITED,
        claimed_username=claimed,
        details={"path": request.path, "throttle": verdict.by, "retry_after": seconds},
    )
    return Refused(Refusal.RATE_LIMITED, reasons.RATE_LIMITED, RATE_LIMITED_MESSAGE, retry_after=seconds)


#: A lock binds the claimed name from one address (PAIR), or one address for every name (ADDRESS).
LOCKED_MESSAGES = {
    PAIR: _l("Too many failed sign-ins for this account from your network. Try again in %(wait)s."),
    ADDRESS: _l("Too many failed sign-ins from your network. Try again in %(wait)s."),
}


def wait_words(seconds: float) -> str:
    """How long a lock still lasts, in words: whole minutes, rounded up."""
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext("%(num)d minute", "%(num)d minutes", minutes)


def locked_out(verdict: ThrottleVerdict, claimed: str) -> Refused:
    """A locked pair or address: refused before any factor is checked (so no failure is counted and nothing is
    learned), told how long the lock lasts, audited as ``LOCKED``."""
    seconds = max(1, math.ceil(verdict.unlocks_in))
    user = context.find_user(db(), claimed) if claimed else None
    audit.record(
        reasons.LOGIN,
        reasons.FAILURE,
        reasons.LOCKED,
        user_id=user.id if user is not None else None,
        claimed_username=claimed,
        details={"path": request.path, "lock": verdict.by, "retry_after": seconds},
    )
    message = str(LOCKED_MESSAGES[verdict.by]) % {"wait": wait_words(seconds)}
    return Refused(Refusal.LOCKED, reasons.LOCKED, message, retry_after=seconds)


def held_back(verdict: ThrottleVerdict, claimed: str) -> Refused | None:
    """The answer to an attempt the throttle does not let through (a delay, a lock), or None."""
    if verdict.throttled:
        return throttled(verdict, claimed)
    if verdict.locked:
        return locked_out(verdict, claimed)
    return None


@dataclass(frozen=True)
class FirstFactorPassed:
    """The first factor is right and the face step can follow (``preauth`` is saved in the session)."""

    preauth: PreAuth
    next_step: str


def first_factor_result(
    step: str, user: User | None, claimed: str, outcome: StepOutcome
) -> FirstFactorPassed | Refused:
    """Book a first factor's outcome (the throttle let it through: ``held_back``): a failure is counted like a
    failed login, audited with its reason and answered generically; a right factor for an account that cannot
    do the face step is told so plainly (not counted, audited); otherwise the pre-auth state is saved."""
    config = context.settings()
    failures = context.failure_log()
    subject = {"user_id": user.id if user is not None else None, "claimed_username": claimed}
    generic = PASSKEY_FAILED if step == PASSKEY else FIRST_FACTOR_FAILED
    if not outcome.passed:
        locked = failures.record_failure(claimed, client_address())
        details = {"step": step, **outcome.details}
        if locked:
            auth_metrics.metrics().lockouts.inc(len(locked))
            details["locked"] = locked
        audit.record(reasons.LOGIN, reasons.FAILURE, outcome.reason, details=details, **subject)
        clear()
        return Refused(Refusal.LOGIN_FAILED, outcome.reason, generic)
    assert user is not None
    if not user.is_active or not user.templates:
        reason = reasons.DISABLED if not user.is_active else reasons.NO_TEMPLATES
        audit.record(reasons.LOGIN, reasons.FAILURE, reason, details={"step": step, "first_factor": "ok"}, **subject)
        clear()
        return Refused(Refusal.ACCOUNT_UNUSABLE, reason, dead_end_message(reason, config.self_service_recovery))
    # Not audited on its own: the face step's row (success or failure) names the steps before it.
    preauth = PreAuth(user.id, claimed, (step,), outcome.amr, time.time())
    save(preauth)
    flow = current_flow()
    return FirstFactorPassed(preauth, next_step(flow, preauth.passed) or FACE)


def check_password(username_raw: object, password_raw: object) -> FirstFactorPassed | Refused:
    """The password step of ``password+face``: before the camera starts."""
    if current_flow()[0] != PASSWORD:
        return Refused(Refusal.BAD_REQUEST, reasons.BAD_REQUEST, _("This site does not sign in with a password."))
    username = validated_username(username_raw)
    if isinstance(username, Refused):
        return username
    held = held_back(context.failure_log().verdict(username, client_address()), username)
    if held is not None:
        return held
    user = context.find_user(db(), username)
    outcome = PASSWORD_STEP.check(user, password_raw if isinstance(password_raw, str) else "")
    return first_factor_result(PASSWORD, user, username, outcome)
