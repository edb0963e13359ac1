"""The admin's flash calibration: a capture with a screen-flash sequence, judged by liveness alone.

No recognition, no sign-in, nothing stored but the audit row (event ``flash_calibration``): the admin sees what
the flash check measured on their own webcam and screen — the decision, the score against its threshold, the
face's gain, the background's ratio, the lag, and per frame the colour expected on the face beside the skin's and
the background's mean colour — to set the LIVENESS_FLASH_* thresholds for real devices (admin/flash.html plots it).
The challenge is the ceremony's (``ceremony.FLASH_CALIBRATION``): single use, bound to this browser session and
admin, with a flash even when AUTH_FLASH is off, and no actions to perform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import FileStorage

from auth_web import context, reasons
from auth_web.ceremony import FLASH_CALIBRATION, Capture, Issued, Refusal, Refused, Scores, Subject
from auth_web.decision import flash_details, liveness_reason_code
from auth_web.face_services import CaptureRejected
from auth_web.uploads import CaptureError
from faceauth.liveness.v1 import liveness_pb2

CALIBRATION_EXPIRED = _l("This calibration capture expired or was already used. Start again.")
CALIBRATION_TOO_EARLY = _l("This capture arrived sooner than it could have been recorded. Start again.")
REJECTED = _l("The liveness service could not read this capture. Start again.")


@dataclass(frozen=True)
class FrameMeasurement:
    time_ms: int
    expected: str | None  # "#rrggbb": the screen colour expected on the face (after the estimated lag)
    skin: list[float] | None  # mean linear RGB 0..1
    background: list[float] | None


@dataclass(frozen=True)
class Calibrated:
    """What liveness said about the calibration capture."""

    live: bool
    reason: str
    failed_checks: list[str]
    flash: dict[str, Any] | None
    planarity_residual: float | None
    frames: list[FrameMeasurement]
    steps: list[dict[str, Any]]
    flash_start_ms: int


def issue_challenge() -> Issued:
    return Issued(FLASH_CALIBRATION.issue(user_id=g.user.id))


def _colour(values: Any) -> list[float] | None:
    return [round(float(value), 5) for value in values] if len(values) else None


def summarise(
    check: liveness_pb2.CheckResponse, capture: Capture, steps: list[dict[str, Any]], fps: float
) -> Calibrated:
    """The admin's view of a liveness answer (plain data for the JSON body)."""
    measured = flash_details(check)
    # Without frame times liveness assumes evenly spaced frames, and so does the plot.
    times = capture.frame_times or [round(index * 1000 / fps) for index in range(len(check.frames))]
    frames = []
    for index, frame in enumerate(check.frames):
        time_ms = times[index] if index < len(times) else round(index * 1000 / fps)
        expected = f"#{frame.flash_expected_rgb:06x}" if frame.HasField("flash_expected_rgb") else None
        frames.append(FrameMeasurement(time_ms, expected, _colour(frame.skin_rgb), _colour(frame.background_rgb)))
    return Calibrated(
        live=bool(check.live),
        reason=liveness_reason_code(check.reason),
        failed_checks=[liveness_reason_code(reason) for reason in check.failed_checks],
        flash=measured["flash"],
        planarity_residual=measured["planarity_residual"],
        frames=frames,
        steps=steps,
        flash_start_ms=capture.flash_start_ms,
    )


def check(
    nonce: str, files: list[FileStorage], frame_times_raw: str | None, flash_start_raw: str | None
) -> Calibrated | Refused:
    user = g.user
    subject = Subject(user.id, user.username)
    challenge = FLASH_CALIBRATION.consume_for(nonce, subject, CALIBRATION_EXPIRED)
    if isinstance(challenge, Refused):
        return challenge
    try:
        capture = FLASH_CALIBRATION.read_capture(challenge, files, frame_times_raw, flash_start_raw)
    except CaptureError as error:
        FLASH_CALIBRATION.record(
            subject, reasons.FAILURE, reasons.BAD_CAPTURE, Scores(details={"capture": error.reason})
        )
        return Refused(Refusal.BAD_CAPTURE, reasons.BAD_CAPTURE, str(error))
    late_or_early = FLASH_CALIBRATION.timing(challenge, capture)
    if late_or_early is not None:
        FLASH_CALIBRATION.record(subject, reasons.FAILURE, late_or_early)
        if late_or_early == reasons.CHALLENGE_LATE:
            return Refused(Refusal.CHALLENGE_INVALID, late_or_early, CALIBRATION_EXPIRED)
        return Refused(Refusal.BAD_CAPTURE, late_or_early, CALIBRATION_TOO_EARLY)
    try:
        with FLASH_CALIBRATION.audit_outage(subject):
            answer = FLASH_CALIBRATION.check(challenge, capture)
    except CaptureRejected as error:
        details = {"capture": "REJECTED_BY_SERVICE", "service": error.service}
        FLASH_CALIBRATION.record(subject, reasons.FAILURE, reasons.BAD_CAPTURE, Scores(details=details))
        return Refused(Refusal.BAD_CAPTURE, reasons.BAD_CAPTURE, REJECTED)
    steps = [{"colour": step.colour, "duration_ms": step.duration_ms} for step in challenge.flash]
    result = summarise(answer, capture, steps, context.settings().capture.fps)
    details = {
        "liveness_failed_checks": result.failed_checks,
        "flash": result.flash,
        "planarity_residual": result.planarity_residual,
        "liveness_model": answer.model_version,
    }
    live_score = float(answer.live_score) if answer.HasField("live_score") else None
    FLASH_CALIBRATION.record(
        subject, reasons.SUCCESS if result.live else reasons.FAILURE, result.reason, Scores(live_score, details=details)
    )
    return result
