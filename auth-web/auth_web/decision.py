"""The login and enrollment decisions, from the two services' answers. Plain functions, no I/O.

The browser only ever learns accepted/refused; the reason code (``reasons.py``) goes to the audit log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from auth_web import reasons
from faceauth.liveness.v1 import liveness_pb2
from faceauth.recognition.v1 import recognition_pb2


def liveness_reason_code(reason: int) -> str:
    """``LIVENESS_SPOOF_SUSPECTED`` etc. from the proto enum value."""
    name = liveness_pb2.LivenessReason.Name(reason) if reason in liveness_pb2.LivenessReason.values() else "UNKNOWN"
    return name.replace("LIVENESS_REASON_", "LIVENESS_")


def verify_reason_code(reason: int) -> str:
    name = recognition_pb2.VerifyReason.Name(reason) if reason in recognition_pb2.VerifyReason.values() else "UNKNOWN"
    return name.replace("VERIFY_REASON_", "VERIFY_")


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: str
    live_score: float | None = None
    match_distance: float | None = None
    matched_frames: int | None = None
    details: dict = field(default_factory=dict)


def _live_score(check: liveness_pb2.CheckResponse) -> float | None:
    """The capture's passive score; None when the service did not compute one (the field is unset)."""
    if not check.HasField("live_score") or not math.isfinite(check.live_score):
        return None
    return float(check.live_score)


def liveness_passed(check: liveness_pb2.CheckResponse, challenge_length: int, flash_sent: bool = False) -> str | None:
    """None when the capture is live; otherwise the reason code.

    Trusts nothing implicit: ``live`` must be set, the reason must be LIVE, every requested action must be
    reported performed (a service that skipped the active check must not pass a login), and a flash that was
    sent must be reported checked and reflected (``FLASH_NOT_CHECKED`` when liveness runs without its flash
    check: AUTH_FLASH on needs `flash` in LIVENESS_CHECKS).
    """
    if not check.live or check.reason != liveness_pb2.LIVENESS_REASON_LIVE:
        reason = check.reason if check.reason != liveness_pb2.LIVENESS_REASON_LIVE else 0
        return liveness_reason_code(reason) if reason else reasons.LIVENESS_UNSPECIFIED
    if len(check.actions) != challenge_length or not all(action.performed for action in check.actions):
        return liveness_reason_code(liveness_pb2.LIVENESS_REASON_CHALLENGE_NOT_MET)
    if flash_sent:
        if not check.HasField("flash"):
            return reasons.FLASH_NOT_CHECKED
        if not check.flash.reflected:
            return liveness_reason_code(liveness_pb2.LIVENESS_REASON_FLASH_NOT_REFLECTED)
    return None


def flash_details(check: liveness_pb2.CheckResponse) -> dict[str, Any]:
    """The audit's view of the flash and planarity checks: ``flash`` (None when it did not run) and
    ``planarity_residual`` (None when no turn was judged)."""
    flash = None
    if check.HasField("flash"):
        result = check.flash
        flash = {
            "reflected": bool(result.reflected),
            "score": round(float(result.score), 4),
            "threshold": round(float(result.threshold), 4),
            "face_gain": round(float(result.face_gain), 4),
            "background_ratio": round(float(result.background_ratio), 4),
            "lag_ms": int(result.lag_ms),
        }
    planarity = round(float(check.planarity_residual), 4) if check.HasField("planarity_residual") else None
    return {"flash": flash, "planarity_residual": planarity}


def same_embedding_space(template_version: str, service_version: str) -> bool:
    """Whether a template of ``template_version`` can be compared with the service's embeddings.

    What follows a "+" in a model version is build metadata: recognition-service reports its descriptor's
    runtime there (``...+tflite`` for the TFLite port of dlib's network, nothing for dlib's own), and both
    compute the same embeddings (bench/results/descriptor_parity.md). The part before it must be equal.
    """
    return template_version.split("+", 1)[0] == service_version.split("+", 1)[0]


def decide_login(
    check: liveness_pb2.CheckResponse,
    verify: recognition_pb2.VerifyResponse,
    *,
    challenge_length: int,
    min_matched_frames: int,
    template_model_versions: Sequence[str],
    flash_sent: bool = False,
) -> Decision:
    """Accept only if the capture is live AND enough frames match the claimed user AND it is one face throughout.

    Liveness is reported first: a spoof is the more important fact for the audit log than a non-match.
    """
    distances = [frame.distance for frame in verify.frames if frame.HasField("distance")]
    scores = {
        "live_score": _live_score(check),
        "match_distance": float(min(distances)) if distances else None,
        "matched_frames": int(verify.matched_frames),
    }
    details = {
        "liveness_reason": liveness_reason_code(check.reason),
        "liveness_failed_checks": [liveness_reason_code(r) for r in check.failed_checks],
        "actions_performed": [bool(a.performed) for a in check.actions],
        "verify_reason": verify_reason_code(verify.reason),
        "frame_distances": [
            round(float(frame.distance), 3) if frame.HasField("distance") else None for frame in verify.frames
        ],
        "min_matched_frames_service": int(verify.min_matched_frames),
        "threshold": round(float(verify.threshold), 4),
        "max_intra_capture_distance": round(float(verify.max_intra_capture_distance), 4)
        if verify.HasField("max_intra_capture_distance")
        else None,
        "liveness_model": check.model_version,
        "recognition_model": verify.model_version,
        **flash_details(check),
    }
    liveness_failure = liveness_passed(check, challenge_length, flash_sent)
    if liveness_failure is not None:
        return Decision(False, liveness_failure, details=details, **scores)
    if any(not same_embedding_space(version, verify.model_version) for version in template_model_versions):
        return Decision(False, reasons.TEMPLATES_OUTDATED, details=details, **scores)
    if not verify.match or verify.reason != recognition_pb2.VERIFY_REASON_MATCH:
        reason = verify.reason if verify.reason != recognition_pb2.VERIFY_REASON_MATCH else 0
        return Decision(
            False, verify_reason_code(reason) if reason else reasons.VERIFY_UNSPECIFIED, details=details, **scores
        )
    # Our own floor, independent of the service's configuration.
    if verify.matched_frames < min_matched_frames:
        return Decision(False, verify_reason_code(recognition_pb2.VERIFY_REASON_NO_MATCH), details=details, **scores)
    return Decision(True, reasons.OK, details=details, **scores)


@dataclass(frozen=True)
class EnrollmentTemplate:
    embedding: list[float]
    quality: float


@dataclass(frozen=True)
class EnrollmentDecision:
    accepted: bool
    reason: str
    templates: list[EnrollmentTemplate]
    model_version: str
    live_score: float | None
    details: dict


def decide_enrollment(
    check: liveness_pb2.CheckResponse,
    encoded: recognition_pb2.EncodeResponse,
    *,
    challenge_length: int,
    min_faces: int,
    min_quality: float,
    max_templates: int,
    flash_sent: bool = False,
) -> EnrollmentDecision:
    """Live capture AND at least ``min_faces`` good-quality faces of one person → the best ``max_templates``.

    Whether the faces are one person is recognition's answer (``same_person``, judged with its
    RECOGNITION_MAX_INTRA_DISTANCE, the threshold login's same-face check uses too).
    """
    usable = [
        face
        for face in encoded.faces
        if face.status == recognition_pb2.FACE_STATUS_OK and len(face.embedding) > 0 and face.quality >= min_quality
    ]
    statuses = [recognition_pb2.FaceStatus.Name(face.status).replace("FACE_STATUS_", "") for face in encoded.faces]
    details = {
        "face_statuses": statuses,
        "usable_faces": len(usable),
        "liveness_reason": liveness_reason_code(check.reason),
        "liveness_failed_checks": [liveness_reason_code(r) for r in check.failed_checks],
        **flash_details(check),
    }
    live_score = _live_score(check)
    failure = liveness_passed(check, challenge_length, flash_sent)
    if failure is not None:
        return EnrollmentDecision(False, failure, [], encoded.model_version, live_score, details)
    if len(usable) < min_faces:
        return EnrollmentDecision(False, reasons.ENROLL_TOO_FEW_FACES, [], encoded.model_version, live_score, details)
    if encoded.HasField("max_intra_capture_distance"):
        details["max_intra_capture_distance"] = round(float(encoded.max_intra_capture_distance), 4)
    if not encoded.same_person:
        return EnrollmentDecision(
            False, reasons.ENROLL_INCONSISTENT_IDENTITY, [], encoded.model_version, live_score, details
        )
    best = sorted(usable, key=lambda face: face.quality, reverse=True)[:max_templates]
    templates = [EnrollmentTemplate(list(face.embedding), float(face.quality)) for face in best]
    return EnrollmentDecision(True, reasons.OK, templates, encoded.model_version, live_score, details)
