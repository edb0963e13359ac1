"""Enrollment: a live capture of the signed-in user becomes their face templates (replacing any old ones)."""

from __future__ import annotations

from typing import Any

from flask import g
from sqlalchemy import delete

from auth_web import audit, context
from auth_web import decision as reasons
from auth_web.challenges import PURPOSE_ENROLL, random_actions
from auth_web.db import db
from auth_web.decision import decide_enrollment
from auth_web.face_services import ServiceUnavailable
from auth_web.login import Outcome, challenge_body
from auth_web.models import FaceTemplate
from auth_web.uploads import CaptureError, parse_frame_times, read_frames
from faceauth_common.imaging import ImageLimits

ADVICE = {
    reasons.ENROLL_TOO_FEW_FACES: (
        "We could not see your face clearly in enough frames. Face the camera, keep your face inside the oval, "
        "use good light, and try again."
    ),
    reasons.ENROLL_INCONSISTENT_IDENTITY: "Make sure only you are in view during the capture, then try again.",
}
LIVENESS_ADVICE = (
    "The capture did not pass the liveness check. Look at the camera, follow the prompt when it appears, and try again."
)


def issue_challenge() -> Outcome:
    config = context.settings()
    actions = random_actions(config.challenge_actions, config.challenge_length)
    challenge = context.challenges().issue(PURPOSE_ENROLL, actions, context.browser_session().hash, user_id=g.user.id)
    return Outcome(200, challenge_body(challenge.nonce, challenge.actions, config))


def enroll(nonce: str, files: list, frame_times_raw: str | None) -> Outcome:
    config = context.settings()
    user = g.user

    def record(result: str, reason: str, **extra: Any) -> None:
        audit.record("enroll", result, reason, user_id=user.id, claimed_username=user.username, **extra)

    challenge, invalid = context.challenges().consume(nonce, PURPOSE_ENROLL, context.browser_session().hash)
    if challenge is None or challenge.user_id != user.id:
        record(audit.FAILURE, invalid or reasons.CHALLENGE_INVALID)
        return Outcome(
            400,
            {
                "ok": False,
                "error": "challenge_invalid",
                "message": "This capture expired or was already used. Please start again.",
            },
        )
    try:
        limits = ImageLimits(config.max_frame_bytes, config.max_frame_pixels, config.max_frames)
        frames = read_frames(files, min_frames=config.min_frames, max_frames=config.max_frames, limits=limits)
        frame_times = parse_frame_times(frame_times_raw, len(frames))
    except CaptureError as error:
        record(audit.FAILURE, reasons.BAD_CAPTURE, details={"capture": error.reason})
        return Outcome(400, {"ok": False, "error": "bad_capture", "message": str(error)})
    try:
        check, encoded = context.face_services().check_and_encode(frames, challenge.actions, frame_times)
    except ServiceUnavailable as error:
        record(audit.ERROR, reasons.SERVICE_UNAVAILABLE, details={"service": error.service, "code": error.code})
        raise
    result = decide_enrollment(
        check,
        encoded,
        challenge_length=len(challenge.actions),
        min_faces=config.enroll_min_faces,
        min_quality=config.enroll_min_quality,
        max_templates=config.enroll_max_templates,
    )
    if not result.accepted:
        record(audit.FAILURE, result.reason, live_score=result.live_score, details=result.details)
        message = ADVICE.get(result.reason, LIVENESS_ADVICE)
        return Outcome(422, {"ok": False, "error": "enrollment_failed", "message": message})
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
    record(
        audit.SUCCESS,
        reasons.OK,
        live_score=result.live_score,
        details={**result.details, "templates": len(result.templates)},
    )
    return Outcome(
        200,
        {
            "ok": True,
            "templates": len(result.templates),
            "message": "Your face is enrolled. Next time, sign in with your camera.",
            "redirect": "/account",
        },
    )


def delete_templates() -> int:
    user = g.user
    count = db().execute(delete(FaceTemplate).where(FaceTemplate.user_id == user.id)).rowcount
    db().commit()
    audit.record(
        "enroll_delete",
        audit.SUCCESS,
        "OK",
        user_id=user.id,
        claimed_username=user.username,
        details={"templates": count},
    )
    return count
