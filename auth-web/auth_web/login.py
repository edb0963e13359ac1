"""The login's face step: challenge → capture → liveness ∥ recognition → decision → session.

The flow's first factor (password or passkey) comes before it (``login_flow.py``): the page checks it before the
camera starts, and the face challenge is then bound to that pre-auth state. The capture ceremony itself
(challenge, frames, the two services, the decision, the audit row) is ``ceremony.LOGIN``; this module adds what
only a login has: the failed-login throttle, decoy templates for claimed users without any, and the session.

API clients may still send the password with the capture instead of before it (``password+face`` only): the same
password step (``login_flow.PASSWORD_STEP``) then runs here, with the same work and the same answer whatever
failed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from flask import session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import FileStorage

from auth_web import context, login_flow, passkeys, reasons, throttle
from auth_web import metrics as auth_metrics
from auth_web.accounts import hash_password, needs_rehash, normalize_username
from auth_web.auth_helpers import sign_in
from auth_web.ceremony import LOGIN, Capture, Issued, Refusal, Refused, Scores, SignedIn, Subject
from auth_web.challenges import Challenge
from auth_web.db import db
from auth_web.decision import Decision
from auth_web.face_services import CaptureRejected, ServiceUnavailable
from auth_web.models import EMBEDDING_DIMENSIONS, User
from auth_web.template_crypto import TemplateDecryptionError
from auth_web.uploads import CaptureError

FACE_FAILED = _l(
    "The face check did not pass. Try again in good light, keep your face inside the oval, follow the prompt."
)
USE_PASSKEY = _l("Or use your passkey instead.")
GENERIC_FAILURE = _l(
    "We couldn't sign you in. Check your username and password, keep your face inside the oval in good light, "
    "follow the prompt, and try again."
)
CHALLENGE_EXPIRED = login_flow.STEP_MISSING
FIRST_FACTOR_FIRST = _l("Sign in with your passkey first, then look at the camera.")


def issue_challenge(username_raw: object) -> Issued | Refused:
    """The face step's challenge. After the flow's first factor (the pre-auth state in this session) it is for
    that account and bound to that state; in ``face`` (and for API clients that send the password with the
    capture) it is for any well-formed username: whether the account exists is not revealed here."""
    flow = login_flow.current_flow()
    preauth = login_flow.load()
    if preauth is not None and login_flow.next_step(flow, preauth.passed) != login_flow.FACE:
        preauth = None
    typed = username_raw.strip() if isinstance(username_raw, str) else ""
    if preauth is not None and typed and normalize_username(typed) != normalize_username(preauth.claimed):
        # A name typed now that is not the one the first factor was for starts over (the password-in-the-capture
        # contract): it does not inherit the other account's first factor.
        login_flow.clear()
        preauth = None
    if preauth is None and flow[0] not in (login_flow.FACE, login_flow.PASSWORD):
        return Refused(Refusal.CHALLENGE_INVALID, reasons.STEP_OUT_OF_ORDER, FIRST_FACTOR_FIRST)
    if preauth is not None:
        username = preauth.claimed
    else:
        checked = login_flow.validated_username(username_raw)
        if isinstance(checked, Refused):
            return checked
        username = checked
    # Told before the capture, not after it: an attempt now would only be answered 429 (nothing is revealed:
    # the failures are counted by claimed name and address, whether or not the account exists).
    failures = context.failure_log()
    held = login_flow.held_back(failures.verdict(username, _client_address()), username)
    if held is not None:
        return held
    # A challenge costs what a failed attempt costs, so re-rolling the challenge (or the flash colours) until an
    # easy one comes is no free lunch; its attempt settles this count rather than adding one (throttle.py).
    charge = failures.charge(username, _client_address())
    if charge.locked:
        auth_metrics.metrics().lockouts.inc(len(charge.locked))
    session["challenge_bound"] = True  # make sure this browser session is stored, so the binding holds
    challenge = LOGIN.issue(
        username=username,
        user_id=preauth.user_id if preauth is not None else None,
        throttle_member=charge.member,
    )
    if preauth is not None:
        login_flow.save(dataclasses.replace(preauth, nonce=challenge.nonce, face_failed=False))
    return Issued(challenge)


def _subject(user: User | None, claimed: str) -> Subject:
    return Subject(user.id if user is not None else None, claimed)


def _scores(face: Decision | None, details: dict[str, Any] | None = None) -> Scores:
    """An audit row's numbers: the face decision's (when it is shown) and any details of the attempt."""
    if face is None:
        return Scores(details=dict(details or {}))
    return Scores(face.live_score, face.match_distance, face.matched_frames, {**face.details, **(details or {})})


_client_address = login_flow.client_address


@functools.lru_cache(maxsize=4)
def decoy_templates(count: int) -> tuple[tuple[float, ...], ...]:
    """Templates no face matches, for claimed users without templates of their own (unknown, disabled, not
    enrolled): recognition then does the same work as for an enrolled user, so the time of the answer does not
    tell whether the account exists. Random unit directions in the embedding space: a real face's embedding is
    about 1.4 away from every one of them, far beyond any match threshold; and a match would change nothing,
    since such an attempt is refused before the face counts."""
    rng = np.random.default_rng(0x5EED_DEC0)
    vectors = rng.normal(size=(count, EMBEDDING_DIMENSIONS))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return tuple(tuple(float(value) for value in vector) for vector in vectors)


def _face_decision(enrolled: User | None, challenge: Challenge, capture: Capture) -> Decision:
    """Liveness ∥ recognition against the enrolled user's templates, or against the decoys when there is none."""
    config = context.settings()
    if enrolled is not None:
        try:
            templates: Sequence[Sequence[float]] = [t.vector(config.template_cipher) for t in enrolled.templates]
        except TemplateDecryptionError as error:
            # Our key configuration (or a tampered row), not the user's capture: nobody gets in, the user sees
            # "temporarily unavailable", the audit row and the log name the key problem.
            raise ServiceUnavailable("template-key", error.reason) from error
        versions = [t.model_version for t in enrolled.templates]
    else:
        templates, versions = decoy_templates(config.enroll_max_templates), []
    return LOGIN.verify(challenge, capture, templates, versions)


def _refusal(user: User | None, password_ok: bool, capture_problem: str | None, face: Decision | None) -> str | None:
    """The audit reason an attempt is refused for, or None when it is accepted. Only the audit sees it: every
    refusal gets the same answer, so the order here is only about which reason is the most telling."""
    if user is None:
        return reasons.UNKNOWN_USER
    if not password_ok:
        return reasons.NO_PASSWORD_SET if user.password_hash is None else reasons.BAD_PASSWORD
    if not user.is_active:
        return reasons.DISABLED
    if capture_problem is not None:
        return capture_problem
    if not user.templates:
        return reasons.NO_TEMPLATES
    assert face is not None
    return None if face.accepted else face.reason


def _refuse(
    reason: str,
    subject: Subject,
    challenge: Challenge,
    failures: throttle.FailureLog,
    scores: Scores,
    fallback: str | None = None,
    *,
    first_factor_passed: bool = False,
) -> Refused:
    """Every refused attempt after a valid challenge: counted once (by claimed name and address, whether or not
    the account exists: the challenge's charge settled), audited with the user id when there is a user, and one
    answer for all of them."""
    details = dict(scores.details)
    if challenge.throttle_member:
        failures.settle_failure(subject.claimed, _client_address(), challenge.throttle_member)
    else:  # a challenge issued before challenges were charged (an upgrade within its TTL)
        locked = failures.record_failure(subject.claimed, _client_address())
        if locked:
            auth_metrics.metrics().lockouts.inc(len(locked))
            details["locked"] = locked
    shown = Scores(scores.live_score, scores.match_distance, scores.matched_frames, details)
    LOGIN.record(subject, reasons.FAILURE, reason, shown)
    # Only someone whose first factor was right learns what went wrong with the face.
    message = login_flow.face_advice(reason, FACE_FAILED) if first_factor_passed else GENERIC_FAILURE
    if fallback is not None:
        message = f"{message} {USE_PASSKEY}"
    return Refused(Refusal.LOGIN_FAILED, reason, message, fallback=fallback)


def attempt(
    nonce: str,
    password: str,
    files: list[FileStorage],
    frame_times_raw: str | None,
    flash_start_raw: str | None = None,
) -> SignedIn | Refused:
    """The face step. After the flow's first factor (the challenge's pre-auth state) only the face is judged.
    Without one (``face``, or the password sent with the capture), whatever fails — the challenge aside — the same
    work is done and the same answer given: the password is checked with one argon2 verification on every path
    (unknown user, no password, unusable capture), and liveness ∥ recognition run on every
    usable capture (against decoy templates when the claimed user has none), whatever the password was. So
    neither the status, the body nor the time of a refusal says whether the password was right, unless the face
    passed too.
    """
    config = context.settings()
    challenge, invalid = LOGIN.consume(nonce)
    if challenge is None:
        LOGIN.record(Subject(None, ""), reasons.FAILURE, invalid)
        return Refused(Refusal.CHALLENGE_INVALID, invalid, CHALLENGE_EXPIRED)
    claimed = challenge.username
    failures = context.failure_log()
    # Judged as things stood before this challenge was charged (its own count is not a reason to wait).
    held = login_flow.held_back(
        failures.verdict(claimed, _client_address(), excluding=challenge.throttle_member), claimed
    )
    if held is not None:
        return held

    user = context.find_user(db(), claimed)
    subject = _subject(user, claimed)
    details: dict[str, Any] = {}
    capture: Capture | None = None
    late_or_early: str | None = None
    try:
        capture = LOGIN.read_capture(challenge, files, frame_times_raw, flash_start_raw)
    except CaptureError as error:
        details["capture"] = error.reason
    if capture is not None:
        # A capture the page could not have sent at this moment is not judged (frames rendered at leisure for
        # the flash sequence, or replayed faster than it could have been filmed).
        late_or_early = LOGIN.timing(challenge, capture)
        if late_or_early is not None:
            details["elapsed_seconds"] = round(context.challenges().clock() - challenge.issued_at, 2)
            capture = None

    flow = login_flow.current_flow()
    preauth = login_flow.bound_to(challenge.nonce, challenge.user_id) if challenge.user_id is not None else None
    first_amr: tuple[str, ...] = ()
    if preauth is not None:
        password_ok, first_amr = True, preauth.amr  # the first factor passed before the camera started
        details["steps"] = [*preauth.passed, login_flow.FACE]
    elif flow[0] == login_flow.PASSWORD:
        # The password sent with the capture: one argon2 verification on every path (a dummy hash without a user
        # or password); its result is used last.
        outcome = login_flow.PASSWORD_STEP.check(user, password or "")
        password_ok = outcome.passed
        first_amr = outcome.amr
    else:
        # ``face``: no first factor. (``passkey+face`` issues no challenge without its first factor.)
        password_ok = flow[0] == login_flow.FACE

    enrolled = user if user is not None and user.is_active and user.templates else None
    face: Decision | None = None
    if capture is not None:
        try:
            with LOGIN.audit_outage(subject):
                face = _face_decision(enrolled, challenge, capture)
        except CaptureRejected as error:
            # A frame that passed the header checks but does not decode (e.g. a truncated JPEG).
            details.update(capture="REJECTED_BY_SERVICE", service=error.service)

    capture_problem = reasons.BAD_CAPTURE if "capture" in details else late_or_early
    reason = _refusal(user, password_ok, capture_problem, face)
    if reason is not None:
        # Scores against decoy templates mean nothing: only an enrolled user's are audited.
        shown = face if enrolled is not None else None
        fallback = None
        if preauth is not None:
            preauth = login_flow.face_failed(preauth)
            if login_flow.fallback_allowed(config.passkey_fallback, preauth, passkeys.has_passkey(preauth.user_id)):
                fallback = login_flow.PASSKEY
        return _refuse(
            reason, subject, challenge, failures, _scores(shown, details), fallback, first_factor_passed=bool(preauth)
        )
    assert user is not None and face is not None

    failures.record_success(claimed, _client_address(), challenge.throttle_member)
    if preauth is None and "pwd" in first_amr and user.password_hash is not None and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = dt.datetime.now(dt.UTC)
    db().commit()
    sign_in(user, login_flow.signed_in_amr(first_amr, ["face"]))
    LOGIN.record(subject, reasons.SUCCESS, reasons.OK, _scores(face, {"steps": details["steps"]} if preauth else None))
    return SignedIn(reasons.OK, user.username, _("Welcome, %(name)s.", name=user.username))
