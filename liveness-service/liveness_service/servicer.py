"""LivenessService: proto <-> domain translation and error -> status mapping; nothing else."""

from __future__ import annotations

import logging

import grpc

from faceauth.common.v1 import geometry_pb2
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc
from faceauth_common.grpc_server import EngineSlot
from faceauth_common.imaging import ImageError, decode_frames
from faceauth_common.metrics import created_once, metrics, observe_stage
from liveness_service.config import Settings
from liveness_service.flash import FlashStep
from liveness_service.verdict import Cancelled, InvalidRequest, LivenessEngine, Verdict

log = logging.getLogger(__name__)

_ACTION_NAMES = {
    liveness_pb2.ACTION_BLINK: "BLINK",
    liveness_pb2.ACTION_TURN_LEFT: "TURN_LEFT",
    liveness_pb2.ACTION_TURN_RIGHT: "TURN_RIGHT",
}
_ACTION_VALUES = {name: value for value, name in _ACTION_NAMES.items()}


def _flash_score_histogram():  # type: ignore[no-untyped-def]
    from prometheus_client import Histogram

    return Histogram(
        "faceauth_liveness_flash_score",
        "Flash check score per Check (correlation of the face's colour change with the screen's sequence, 0..1)",
        buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0),
    )


# Created on first use, after prometheus-client's storage was chosen (see faceauth_common.metrics).
flash_score = created_once(_flash_score_histogram)


def _reason(name: str) -> int:
    return liveness_pb2.LivenessReason.Value(f"LIVENESS_REASON_{name}")


class LivenessServicer(liveness_pb2_grpc.LivenessServiceServicer):
    def __init__(self, slot: EngineSlot[LivenessEngine], settings: Settings) -> None:
        self._slot = slot
        self._settings = settings

    def Check(self, request: liveness_pb2.CheckRequest, context: grpc.ServicerContext) -> liveness_pb2.CheckResponse:
        engine = self._slot.get(context)
        actions = []
        for value in request.challenge:
            if value not in _ACTION_NAMES:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"challenge: unknown or unspecified action {value}")
            actions.append(_ACTION_NAMES[value])
        metrics().frames.labels(method="Check").observe(len(request.frames))
        try:
            with observe_stage("decode"):
                images = decode_frames(list(request.frames), self._settings.limits)
            verdict = engine.check(
                images,
                actions,
                list(request.frame_times_ms),
                cancelled=lambda: not context.is_active(),
                flash=[FlashStep(step.rgb, step.duration_ms) for step in request.flash],
                flash_start_ms=float(request.flash_start_ms),
            )
        except ImageError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"frames: {error}")
        except InvalidRequest as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except Cancelled:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed before the check finished")
        flash = verdict.flash
        if flash is not None:
            flash_score().observe(flash.score)
        log.info(
            "liveness_checked",
            extra={
                "fields": {
                    "frames": len(images),
                    "live": verdict.live,
                    "reason": verdict.reason,
                    "failed": verdict.failed_checks,
                    "live_score": None if verdict.live_score is None else round(verdict.live_score, 4),
                    "timings_ms": {k: round(v, 1) for k, v in verdict.timings_ms.items()},
                    "planarity_residual": None
                    if verdict.planarity_residual is None
                    else round(verdict.planarity_residual, 4),
                    "timing_problem": verdict.timing_problem or None,
                    "flash": None
                    if flash is None
                    else {
                        "reflected": flash.reflected,
                        "score": round(flash.score, 3),
                        "face_gain": round(flash.face_gain, 4),
                        "background_ratio": round(flash.background_ratio, 3),
                        "edge_ratio": round(flash.edge_ratio, 3),
                        "lag_ms": flash.lag_ms,
                        "covered_steps": flash.covered_steps,
                        "detail": flash.detail,
                    },
                }
            },
        )
        return to_response(verdict)


def to_response(verdict: Verdict) -> liveness_pb2.CheckResponse:
    """Measurements that were not computed stay unset (``HasField`` is false), never a sentinel value."""
    response = liveness_pb2.CheckResponse(
        live=verdict.live,
        reason=_reason(verdict.reason),
        failed_checks=[_reason(name) for name in verdict.failed_checks],
        live_score=verdict.live_score,
        live_threshold=verdict.live_threshold,
        model_version=verdict.model_version,
        planarity_residual=verdict.planarity_residual,
    )
    for frame in verdict.frames:
        diagnostics = response.frames.add(
            face_count=frame.face_count,
            live_score=frame.live_score,
            eye_aspect_ratio=frame.eye_aspect_ratio,
            yaw_degrees=frame.yaw_degrees,
            difference_to_previous=frame.difference_to_previous,
            colour_change_to_previous=frame.colour_change_to_previous,
            flash_expected_rgb=frame.flash_expected_rgb,
            skin_rgb=frame.skin_rgb or (),
            background_rgb=frame.background_rgb or (),
        )
        if frame.box is not None:
            diagnostics.box.CopyFrom(
                geometry_pb2.BoundingBox(
                    left=frame.box.left, top=frame.box.top, right=frame.box.right, bottom=frame.box.bottom
                )
            )
    if verdict.flash is not None:
        flash = verdict.flash
        response.flash.CopyFrom(
            liveness_pb2.FlashResult(
                reflected=flash.reflected,
                score=flash.score,
                threshold=flash.threshold,
                face_gain=flash.face_gain,
                background_ratio=flash.background_ratio,
                lag_ms=flash.lag_ms,
                edge_ratio=flash.edge_ratio,
                covered_steps=flash.covered_steps,
                detail=flash.detail,
            )
        )
    for outcome in verdict.actions:
        response.actions.add(
            action=_ACTION_VALUES[outcome.action],
            performed=outcome.performed,
            frame_index=outcome.frame_index if outcome.performed else None,
        )
    return response
