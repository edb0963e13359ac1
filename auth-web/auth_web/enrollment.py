"""Enrollment: a live capture of the signed-in user becomes their face templates (replacing any old ones).

The capture ceremony (challenge, frames, the two services, the decision, the audit row) is
``ceremony.ENROLLMENT``; this module adds the advice shown on a refusal and the storing of the templates.
"""

from __future__ import annotations

from flask import g
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete
from werkzeug.datastructures import FileStorage

from auth_web import audit, context, reasons
from auth_web.ceremony import ENROLLMENT, Enrolled, Issued, Refusal, Refused, Scores, Subject
from auth_web.db import db
from auth_web.models import FaceTemplate, User
from auth_web.uploads import CaptureError

ADVICE = {
    reasons.ENROLL_TOO_FEW_FACES: _l(
        "We could not see your face clearly in enough frames. Face the camera, keep your face inside the oval, "
        "use good light, and try again."
    ),
    reasons.ENROLL_INCONSISTENT_IDENTITY: _l("Make sure only you are in view during the capture, then try again."),
}
LIVENESS_ADVICE = _l(
    "The capture did not pass the liveness check. Look at the camera, follow the prompt when it appears, and try again."
)
CAPTURE_EXPIRED = _l("This capture expired or was already used. Please start again.")
CAPTURE_TOO_EARLY = _l("This capture arrived sooner than it could have been recorded. Please start again.")
ENROLLED = _l("Your face is enrolled. Next time, sign in with your camera.")


def issue_challenge(user: User | None = None) -> Issued:
    """A challenge for enrolling ``user`` (default: the signed-in user; a recovery session passes its own)."""
    return Issued(ENROLLMENT.issue(user_id=(user or g.user).id))


def enroll(
    nonce: str,
    files: list[FileStorage],
    frame_times_raw: str | None,
    flash_start_raw: str | None = None,
    *,
    user: User | None = None,
    channel: str = "account",
) -> Enrolled | Refused:
    """``channel`` goes into the success's audit row: "account" (a signed-in user) or "recovery_link"."""
    config = context.settings()
    user = user or g.user
    replaced = len(user.templates)
    subject = Subject(user.id, user.username)

    challenge = ENROLLMENT.consume_for(nonce, subject, CAPTURE_EXPIRED)
    if isinstance(challenge, Refused):
        return challenge
    try:
        capture = ENROLLMENT.read_capture(challenge, files, frame_times_raw, flash_start_raw)
    except CaptureError as error:
        ENROLLMENT.record(subject, reasons.FAILURE, reasons.BAD_CAPTURE, Scores(details={"capture": error.reason}))
        return Refused(Refusal.BAD_CAPTURE, reasons.BAD_CAPTURE, str(error))
    late_or_early = ENROLLMENT.timing(challenge, capture)
    if late_or_early is not None:
        ENROLLMENT.record(subject, reasons.FAILURE, late_or_early)
        if late_or_early == reasons.CHALLENGE_LATE:
            return Refused(Refusal.CHALLENGE_INVALID, late_or_early, CAPTURE_EXPIRED)
        return Refused(Refusal.BAD_CAPTURE, late_or_early, CAPTURE_TOO_EARLY)
    with ENROLLMENT.audit_outage(subject):
        result = ENROLLMENT.encode(challenge, capture)
    if not result.accepted:
        ENROLLMENT.record(subject, reasons.FAILURE, result.reason, Scores(result.live_score, details=result.details))
        return Refused(Refusal.ENROLLMENT_FAILED, result.reason, ADVICE.get(result.reason, LIVENESS_ADVICE))
    session_db = db()
    # Re-enrolling replaces the old templates in the same transaction.
    session_db.execute(delete(FaceTemplate).where(FaceTemplate.user_id == user.id))
    for template in result.templates:
        session_db.add(
            FaceTemplate.seal(
                template.embedding,
                user_id=user.id,
                model_version=result.model_version,
                cipher=config.template_cipher,
                quality=template.quality,
                source="browser",
            )
        )
    session_db.commit()
    session_db.expire(user, ["templates"])
    details = {**result.details, "templates": len(result.templates), "replaced": replaced, "channel": channel}
    ENROLLMENT.record(subject, reasons.SUCCESS, reasons.OK, Scores(result.live_score, details=details))
    return Enrolled(reasons.OK, len(result.templates), ENROLLED)


def delete_templates(user: User | None = None) -> int:
    """Remove the user's templates (default: the signed-in user's) and audit it."""
    user = user or g.user
    count = db().execute(delete(FaceTemplate).where(FaceTemplate.user_id == user.id)).rowcount
    db().commit()
    audit.record(
        reasons.ENROLL_DELETE,
        reasons.SUCCESS,
        reasons.OK,
        user_id=user.id,
        claimed_username=user.username,
        details={"templates": count},
    )
    return count
