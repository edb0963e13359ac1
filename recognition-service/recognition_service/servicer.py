"""proto <-> domain for faceauth.recognition.v1; errors become status codes. Nothing else."""

from __future__ import annotations

import logging

import grpc
import numpy as np

from faceauth.common.v1 import geometry_pb2
from faceauth.recognition.v1 import recognition_pb2, recognition_pb2_grpc
from faceauth_common.grpc_server import EngineSlot
from faceauth_common.imaging import ImageError, decode_frames
from faceauth_common.metrics import metrics, observe_stage
from recognition_service.config import Settings
from recognition_service.engine import (
    DeadlineCheck,
    DeadlineExceeded,
    FaceEngine,
    FaceStatus,
    Observation,
)
from recognition_service.verify import FrameResult, VerifyReason, parse_templates, same_person, verify

log = logging.getLogger(__name__)

_FACE_STATUS = {status: recognition_pb2.FaceStatus.Value(f"FACE_STATUS_{status.value}") for status in FaceStatus}
_ENCODE_MODES = frozenset(recognition_pb2.EncodeMode.values())
_VERIFY_REASON = {
    reason: recognition_pb2.VerifyReason.Value(f"VERIFY_REASON_{reason.value}") for reason in VerifyReason
}


class RecognitionServicer(recognition_pb2_grpc.RecognitionServiceServicer):
    def __init__(self, slot: EngineSlot[FaceEngine], settings: Settings) -> None:
        self._slot = slot
        self._settings = settings

    def Encode(
        self, request: recognition_pb2.EncodeRequest, context: grpc.ServicerContext
    ) -> recognition_pb2.EncodeResponse:
        engine = self._slot.get(context)
        if request.mode not in _ENCODE_MODES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown encode mode {request.mode}")
        # Live capture keeps the strict rules; imported photos use the dominant face (choice.py).
        photo = self._settings.photo if request.mode == recognition_pb2.ENCODE_MODE_PHOTO else None
        images = _decode(list(request.images), self._settings, context, "Encode")
        check = _deadline_check(context)
        observations = []
        try:
            for image in images:
                check()
                observations.append(
                    engine.observe(image, self._settings.encode_detection, self._settings.quality, photo)
                )
            check()
            # Every usable face's chip in one descriptor call.
            usable = [index for index, o in enumerate(observations) if o.status is FaceStatus.OK]
            engine.embed_many([images[index] for index in usable], [observations[index] for index in usable])
        except DeadlineExceeded:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline ran out while encoding")
        identity = same_person(
            [o.embedding for o in observations if o.status is FaceStatus.OK and o.embedding is not None],
            self._settings.match,
        )
        log.info(
            "encoded",
            extra={
                "fields": {
                    "images": len(images),
                    "mode": recognition_pb2.EncodeMode.Name(request.mode),
                    "statuses": [o.status.value for o in observations],
                    "same_person": identity.same_person,
                }
            },
        )
        response = recognition_pb2.EncodeResponse(
            faces=[_observation(o, with_embedding=True) for o in observations],
            model_version=engine.model_version,
            same_person=identity.same_person,
            max_intra_distance=self._settings.match.max_intra_distance,
        )
        if identity.max_intra_distance is not None:
            response.max_intra_capture_distance = identity.max_intra_distance
        return response

    def Verify(
        self, request: recognition_pb2.VerifyRequest, context: grpc.ServicerContext
    ) -> recognition_pb2.VerifyResponse:
        engine = self._slot.get(context)
        settings = self._settings
        try:
            templates = parse_templates([list(t.embedding) for t in request.templates], settings.max_templates)
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        images = _decode(list(request.frames), settings, context, "Verify")
        try:
            result = verify(
                engine,
                images,
                templates,
                settings.verify_detection,
                settings.quality,
                settings.match,
                _deadline_check(context),
            )
        except DeadlineExceeded:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline ran out while verifying")
        log.info(
            "verified",
            extra={
                "fields": {
                    "frames": len(images),
                    "templates": len(templates),
                    "match": result.match,
                    "reason": result.reason.value,
                    "matched_frames": result.matched_frames,
                    "compared_frames": result.compared_frames,
                }
            },
        )
        return recognition_pb2.VerifyResponse(
            match=result.match,
            reason=_VERIFY_REASON[result.reason],
            frames=[_frame_match(frame) for frame in result.frames],
            matched_frames=result.matched_frames,
            compared_frames=result.compared_frames,
            threshold=settings.match.threshold,
            min_matched_frames=settings.match.min_matched_frames,
            # Only a distance between two compared frames is one (fewer: nothing was measured).
            max_intra_capture_distance=result.max_intra_distance if result.compared_frames >= 2 else None,
            model_version=engine.model_version,
        )


def _decode(data: list[bytes], settings: Settings, context: grpc.ServicerContext, method: str) -> list[np.ndarray]:
    metrics().frames.labels(method=method).observe(len(data))
    try:
        with observe_stage("decode"):
            return decode_frames(data, settings.limits)
    except ImageError as error:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{error} ({error.reason})")
    raise AssertionError("unreachable")


def _deadline_check(context: grpc.ServicerContext) -> DeadlineCheck:
    def check() -> None:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded
        if not context.is_active():
            raise DeadlineExceeded

    return check


def _frame_match(frame: FrameResult) -> recognition_pb2.FrameMatch:
    message = recognition_pb2.FrameMatch(
        face=_observation(frame.observation, with_embedding=False), matched=frame.matched, compared=frame.compared
    )
    if frame.distance is not None:
        message.distance = frame.distance
    return message


def _observation(observation: Observation, *, with_embedding: bool) -> recognition_pb2.FaceObservation:
    message = recognition_pb2.FaceObservation(
        status=_FACE_STATUS[observation.status],
        detection_score=observation.detection_score,
        quality=observation.quality,
        sharpness=observation.sharpness,
        brightness=observation.brightness,
        faces_found=observation.faces_found,
    )
    if observation.box is not None:
        box = observation.box
        message.box.CopyFrom(geometry_pb2.BoundingBox(left=box.left, top=box.top, right=box.right, bottom=box.bottom))
    if with_embedding and observation.embedding is not None and observation.status is FaceStatus.OK:
        message.embedding.extend(observation.embedding.tolist())
    return message
