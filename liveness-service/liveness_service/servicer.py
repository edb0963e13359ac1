"""LivenessService: proto <-> domain translation and error -> status mapping; nothing else."""

from __future__ import annotations

import logging

import grpc

from faceauth.common.v1 import geometry_pb2
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc
from faceauth_common.grpc_server import EngineSlot
from faceauth_common.imaging import ImageError, decode_frames
from faceauth_common.metrics import metrics, observe_stage
from liveness_service.config import Settings
from liveness_service.verdict import Cancelled, InvalidRequest, LivenessEngine, Verdict

log = logging.getLogger(__name__)

_ACTION_NAMES = {
    liveness_pb2.ACTION_BLINK: "BLINK",
    liveness_pb2.ACTION_TURN_LEFT: "TURN_LEFT",
    liveness_pb2.ACTION_TURN_RIGHT: "TURN_RIGHT",
}
_ACTION_VALUES = {name: value for value, name in _ACTION_NAMES.items()}


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
                images, actions, list(request.frame_times_ms), cancelled=lambda: not context.is_active()
            )
        except ImageError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"frames: {error}")
        except InvalidRequest as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except Cancelled:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed before the check finished")
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
    )
    for frame in verdict.frames:
        diagnostics = response.frames.add(
            face_count=frame.face_count,
            live_score=frame.live_score,
            eye_aspect_ratio=frame.eye_aspect_ratio,
            yaw_degrees=frame.yaw_degrees,
            difference_to_previous=frame.difference_to_previous,
            colour_change_to_previous=frame.colour_change_to_previous,
        )
        if frame.box is not None:
            diagnostics.box.CopyFrom(
                geometry_pb2.BoundingBox(
                    left=frame.box.left, top=frame.box.top, right=frame.box.right, bottom=frame.box.bottom
                )
            )
    for outcome in verdict.actions:
        response.actions.add(
            action=_ACTION_VALUES[outcome.action],
            performed=outcome.performed,
            frame_index=outcome.frame_index if outcome.performed else None,
        )
    return response
