"""Passkeys (WebAuthn, with the ``webauthn`` library): registration on the account page, and the passkey step of the
login flow (the first factor of ``passkey+face``, or the fallback after a failed face check).

Every ceremony's challenge is single use and short-lived: stored in Redis under this browser session and taken out
with GETDEL, so a replayed response finds nothing. The relying party is ``AUTH_WEBAUTHN_RP_ID`` and
``AUTH_WEBAUTHN_ORIGIN`` (defaults: this request's origin and its host name). Every assertion needs user
verification (the authenticator's PIN or biometric), and a signature counter that went back is refused (a cloned
authenticator) unless both counts are 0 (authenticators that do not count, most synced passkeys).

Functions return domain results (``PasskeyOptions``, ``Registered``, ``Asserted``, ``ceremony.Refused``); the
blueprints turn them into responses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import request, session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_authenticator_data,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from auth_web import audit, context, login_flow, reasons
from auth_web.auth_helpers import sign_in
from auth_web.ceremony import Refusal, Refused, SignedIn
from auth_web.db import db
from auth_web.login_flow import StepOutcome, passkey_amr
from auth_web.models import Passkey, User

#: The two kinds of challenge (a session holds at most one of each).
REGISTER = "register"
ASSERT = "assert"
NAME_MAX_LENGTH = 64
DEFAULT_NAME = "Passkey"
TIMEOUT_MS = 60_000
CHALLENGE_EXPIRED = _l("This passkey request expired or was already used. Please try again.")
REGISTER_FAILED = _l("The passkey could not be added. Try again, or use another authenticator.")


@dataclass(frozen=True)
class RelyingParty:
    rp_id: str
    origin: str
    name: str


def relying_party() -> RelyingParty:
    """The RP id and origin from the settings, else this request's origin (scheme and host as the gateway's
    trusted X-Forwarded-* headers say) and its host name."""
    config = context.settings()
    origin = config.webauthn_origin or request.host_url.rstrip("/")
    rp_id = config.webauthn_rp_id or (urlsplit(origin).hostname or "")
    return RelyingParty(rp_id, origin, config.webauthn_rp_name)


def sign_count_ok(stored: int, presented: int) -> bool:
    """WebAuthn §6.1.1: a counter that does not grow is a cloned authenticator — unless both are 0 (the
    authenticator does not count at all)."""
    if stored == 0 and presented == 0:
        return True
    return presented > stored


def user_handle(user_id: int) -> bytes:
    """The WebAuthn user handle: stable per account, not the database id (it is stored on the authenticator)."""
    key = context.settings().secret_key.encode()
    return hmac.new(key, b"faceauth-webauthn-user:" + str(user_id).encode(), hashlib.sha256).digest()


def has_passkey(user_id: int) -> bool:
    return bool(db().scalar(select(func.count(Passkey.id)).where(Passkey.user_id == user_id)))


def _transports(raw: object) -> list[AuthenticatorTransport]:
    known = {transport.value for transport in AuthenticatorTransport}
    return [AuthenticatorTransport(t) for t in raw or [] if isinstance(t, str) and t in known]  # type: ignore[union-attr]


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=p.credential_id, transports=_transports(p.transports)) for p in passkeys]


# -- pending challenges (Redis, single use, bound to this browser session) ----------------------------------------


def _pending_key(kind: str) -> str:
    config = context.settings()
    return f"{config.redis_prefix}webauthn:{kind}:{context.browser_session().hash}"


def _remember(kind: str, challenge: bytes, **fields: Any) -> None:
    session["challenge_bound"] = True  # the session must be stored for the binding to hold
    payload = {"challenge": bytes_to_base64url(challenge), **fields}
    context.redis().set(_pending_key(kind), json.dumps(payload), ex=context.settings().challenge_ttl_seconds)


def _take(kind: str) -> dict[str, Any] | None:
    raw = context.redis().getdel(_pending_key(kind))
    if raw is None:
        return None
    payload = json.loads(raw)
    return payload if isinstance(payload, dict) else None


# -- registration -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasskeyOptions:
    """The options for navigator.credentials.create() or .get(), as the JSON the page passes on."""

    public_key: dict[str, Any]


@dataclass(frozen=True)
class Registered:
    passkey_id: int
    name: str
    message: str


def registration_options(user: User) -> PasskeyOptions:
    rp = relying_party()
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_name=user.username,
        user_id=user_handle(user.id),
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(list(user.passkeys)),
    )
    _remember(REGISTER, options.challenge, user_id=user.id)
    return PasskeyOptions(json.loads(options_to_json(options)))


def clean_name(raw: object) -> str:
    name = " ".join(str(raw or "").split())[:NAME_MAX_LENGTH] if isinstance(raw, str) else ""
    return "".join(char for char in name if char.isprintable()) or DEFAULT_NAME


def register(user: User, credential: object, name_raw: object) -> Registered | Refused:
    """Verify navigator.credentials.create()'s response for this session's registration challenge and store it."""
    pending = _take(REGISTER)
    if pending is None or pending.get("user_id") != user.id:
        _audit(reasons.PASSKEY_ADD, reasons.FAILURE, reasons.CHALLENGE_INVALID, user)
        return Refused(Refusal.CHALLENGE_INVALID, reasons.CHALLENGE_INVALID, CHALLENGE_EXPIRED)
    rp = relying_party()
    try:
        verified = verify_registration_response(
            credential=credential if isinstance(credential, (str, dict)) else "",
            expected_challenge=base64url_to_bytes(pending["challenge"]),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as error:
        _audit(reasons.PASSKEY_ADD, reasons.FAILURE, reasons.PASSKEY_INVALID, user, {"error": str(error)[:200]})
        return Refused(Refusal.PASSKEY_FAILED, reasons.PASSKEY_INVALID, REGISTER_FAILED)
    if db().scalar(select(Passkey.id).where(Passkey.credential_id == verified.credential_id)) is not None:
        _audit(reasons.PASSKEY_ADD, reasons.FAILURE, reasons.PASSKEY_OTHER_USER, user, {"duplicate": True})
        return Refused(Refusal.PASSKEY_FAILED, reasons.PASSKEY_OTHER_USER, _("This passkey is already registered."))
    transports = credential.get("response", {}).get("transports") if isinstance(credential, dict) else None
    passkey = Passkey(
        user_id=user.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[t.value for t in _transports(transports)] or None,
        name=clean_name(name_raw),
        backup_eligible=verified.credential_device_type == "multi_device",
        backed_up=verified.credential_backed_up,
    )
    db().add(passkey)
    db().commit()
    _audit(reasons.PASSKEY_ADD, reasons.SUCCESS, reasons.OK, user, {"passkey": passkey.id, "name": passkey.name})
    return Registered(passkey.id, passkey.name, _("Passkey “%(name)s” added.", name=passkey.name))


def remove(user: User, passkey_id: int) -> bool:
    passkey = db().get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != user.id:
        return False
    details = {"passkey": passkey.id, "name": passkey.name}
    db().delete(passkey)
    db().commit()
    _audit(reasons.PASSKEY_REMOVE, reasons.SUCCESS, reasons.OK, user, details)
    return True


def rename(user: User, passkey_id: int, name_raw: object) -> bool:
    passkey = db().get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != user.id:
        return False
    old, passkey.name = passkey.name, clean_name(name_raw)
    db().commit()
    _audit(reasons.PASSKEY_RENAME, reasons.SUCCESS, reasons.OK, user, {"passkey": passkey.id, "from": old})
    return True


def _audit(event: str, result: str, reason: str, user: User, details: dict[str, Any] | None = None) -> None:
    audit.record(event, result, reason, user_id=user.id, claimed_username=user.username, details=details)


# -- assertion (the login flow's passkey step) --------------------------------------------------------------------


def authentication_options(user: User | None, claimed: str, purpose: str) -> PasskeyOptions:
    """Options for navigator.credentials.get() towards ``claimed``'s account. An unknown name gets what an account
    without passkeys gets (no credentials listed, a challenge stored the same way), so the options do not say
    whether the account exists."""
    rp = relying_party()
    listed = list(user.passkeys) if user is not None else []
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(listed),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    _remember(
        ASSERT, options.challenge, user_id=user.id if user is not None else None, claimed=claimed, purpose=purpose
    )
    return PasskeyOptions(json.loads(options_to_json(options)))


@dataclass(frozen=True)
class Assertion:
    """A taken challenge and the credential's answer, ready for ``PASSKEY_STEP.check``."""

    pending: dict[str, Any]
    credential: object


@dataclass(frozen=True)
class PasskeyStep:
    """The passkey factor: the assertion must answer this session's challenge, come from a credential of the
    claimed account, verify against its public key for our RP id and origin with user verification, and move
    its signature counter forward. On success the stored counter, backup state and last use are updated."""

    name: str = "passkey"

    def check(self, user: User | None, evidence: Any) -> StepOutcome:
        assert isinstance(evidence, Assertion)
        pending, credential = evidence.pending, evidence.credential
        try:
            parsed = parse_authentication_credential_json(credential if isinstance(credential, (str, dict)) else "")
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            return StepOutcome(False, reasons.PASSKEY_INVALID, details={"error": str(error)[:200]})
        passkey = db().scalar(select(Passkey).where(Passkey.credential_id == parsed.raw_id))
        if passkey is None:
            return StepOutcome(False, reasons.PASSKEY_UNKNOWN)
        if user is None or passkey.user_id != user.id:
            return StepOutcome(False, reasons.PASSKEY_OTHER_USER, details={"credential_user_id": passkey.user_id})
        try:
            presented = parse_authenticator_data(parsed.response.authenticator_data).sign_count
        except (WebAuthnException, ValueError) as error:
            return StepOutcome(False, reasons.PASSKEY_INVALID, details={"error": str(error)[:200]})
        if not sign_count_ok(passkey.sign_count, presented):
            return StepOutcome(
                False, reasons.PASSKEY_SIGN_COUNT, details={"stored": passkey.sign_count, "presented": presented}
            )
        rp = relying_party()
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=base64url_to_bytes(str(pending["challenge"])),
                expected_rp_id=rp.rp_id,
                expected_origin=rp.origin,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            return StepOutcome(False, reasons.PASSKEY_INVALID, details={"error": str(error)[:200]})
        passkey.sign_count = verified.new_sign_count
        passkey.backed_up = verified.credential_backed_up
        passkey.last_used_at = dt.datetime.now(dt.UTC)
        db().commit()
        return StepOutcome(True, reasons.OK, passkey_amr(passkey.backed_up), {"passkey": passkey.id})


PASSKEY_STEP = PasskeyStep()


def take_assertion(credential: object) -> Assertion | None:
    """This session's pending assertion challenge (taken: single use) with the credential's answer."""
    pending = _take(ASSERT)
    if pending is None or "challenge" not in pending:
        return None
    return Assertion(pending, credential)


# -- the login flow's passkey step: first factor of passkey+face, or the fallback after a failed face check -------

#: What the assertion challenge is for (kept with it, so that one cannot be answered as the other).
FIRST_FACTOR = "first_factor"
FALLBACK = "fallback"
FALLBACK_REFUSED = _l("Signing in with a passkey instead of your face is not available here. Please start again.")


def login_options(username_raw: object) -> PasskeyOptions | Refused:
    """Options for the first factor of ``passkey+face`` towards the claimed account (see
    ``authentication_options`` for unknown names)."""
    if login_flow.current_flow()[0] != login_flow.PASSKEY:
        return Refused(Refusal.BAD_REQUEST, reasons.BAD_REQUEST, _("This site does not sign in with a passkey first."))
    username = login_flow.validated_username(username_raw)
    if isinstance(username, Refused):
        return username
    held = login_flow.held_back(context.failure_log().verdict(username, login_flow.client_address()), username)
    if held is not None:
        return held
    return authentication_options(context.find_user(db(), username), username, FIRST_FACTOR)


def _refuse_step(claimed: str, user_id: int | None, reason: str, message: str) -> Refused:
    audit.record(
        reasons.LOGIN, reasons.FAILURE, reason, user_id=user_id, claimed_username=claimed, details={"step": "passkey"}
    )
    return Refused(Refusal.CHALLENGE_INVALID, reason, message)


def login_check(credential: object) -> login_flow.FirstFactorPassed | Refused:
    """The first factor of ``passkey+face``: the assertion for this session's challenge."""
    assertion = take_assertion(credential)
    if assertion is None or assertion.pending.get("purpose") != FIRST_FACTOR:
        return _refuse_step("", None, reasons.CHALLENGE_INVALID, CHALLENGE_EXPIRED)
    claimed = str(assertion.pending.get("claimed", ""))
    held = login_flow.held_back(context.failure_log().verdict(claimed, login_flow.client_address()), claimed)
    if held is not None:
        return held
    user_id = assertion.pending.get("user_id")
    user = db().get(User, user_id) if isinstance(user_id, int) else None
    outcome = PASSKEY_STEP.check(user, assertion)
    return login_flow.first_factor_result(login_flow.PASSKEY, user, claimed, outcome)


def _fallback_state() -> tuple[login_flow.PreAuth, User] | None:
    preauth = login_flow.load()
    if preauth is None:
        return None
    allowed = login_flow.fallback_allowed(context.settings().passkey_fallback, preauth, has_passkey(preauth.user_id))
    user = db().get(User, preauth.user_id)
    return (preauth, user) if allowed and user is not None and user.is_active else None


def _fallback_refused() -> Refused:
    """The passkey fallback is not open to this session (audited, answered generically)."""
    preauth = login_flow.load()
    claimed, user_id = (preauth.claimed, preauth.user_id) if preauth else ("", None)
    refused = _refuse_step(claimed, user_id, reasons.FALLBACK_NOT_ALLOWED, FALLBACK_REFUSED)
    return Refused(Refusal.FALLBACK_NOT_ALLOWED, refused.reason, refused.message)


def fallback_options() -> PasskeyOptions | Refused:
    """Options for "use your passkey instead": only after this session's first factor passed and its face check
    failed, for an account with a passkey, where AUTH_PASSKEY_FALLBACK allows it."""
    state = _fallback_state()
    if state is None:
        return _fallback_refused()
    preauth, user = state
    return authentication_options(user, preauth.claimed, FALLBACK)


def fallback_check(credential: object) -> SignedIn | Refused:
    """Sign in with a passkey instead of the face: the first factor's methods and the passkey's, never "face";
    audited as ``PASSKEY_FALLBACK``. A failed assertion counts as a failed login."""
    state = _fallback_state()
    assertion = take_assertion(credential)
    if state is None:
        return _fallback_refused()
    preauth, user = state
    if (
        assertion is None
        or assertion.pending.get("purpose") != FALLBACK
        or assertion.pending.get("user_id") != preauth.user_id
    ):
        return _refuse_step(preauth.claimed, preauth.user_id, reasons.CHALLENGE_INVALID, CHALLENGE_EXPIRED)
    failures = context.failure_log()
    address = login_flow.client_address()
    held = login_flow.held_back(failures.verdict(preauth.claimed, address), preauth.claimed)
    if held is not None:
        return held
    outcome = PASSKEY_STEP.check(user, assertion)
    subject = {"user_id": user.id, "claimed_username": preauth.claimed}
    if not outcome.passed:
        failures.record_failure(preauth.claimed, address)
        details = {"step": "passkey", "fallback": True, **outcome.details}
        audit.record(reasons.LOGIN, reasons.FAILURE, outcome.reason, details=details, **subject)
        login_flow.clear()
        return Refused(Refusal.LOGIN_FAILED, outcome.reason, login_flow.PASSKEY_FAILED)
    failures.record_success(preauth.claimed, address)
    user.last_login_at = dt.datetime.now(dt.UTC)
    db().commit()
    amr = login_flow.signed_in_amr(preauth.amr, outcome.amr)
    sign_in(user, amr)
    details = {"step": "passkey", "first_factor": list(preauth.passed), "amr": amr, **outcome.details}
    audit.record(reasons.LOGIN, reasons.SUCCESS, reasons.PASSKEY_FALLBACK, details=details, **subject)
    return SignedIn(reasons.PASSKEY_FALLBACK, user.username, _("Welcome, %(name)s.", name=user.username))
