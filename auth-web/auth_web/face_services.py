"""gRPC clients for liveness-service and recognition-service.

Every call has a deadline. A service that is down, overloaded or too slow becomes ``ServiceUnavailable``
(the user sees "temporarily unavailable", nobody gets in); liveness and recognition run in parallel.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auth_web import actions as challenge_actions
from auth_web import metrics as auth_metrics
from auth_web.config import Settings
from auth_web.flash import FlashStep
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc
from faceauth.recognition.v1 import recognition_pb2, recognition_pb2_grpc
from faceauth_common.grpc_client import open_channel
from faceauth_common.tls import TlsNotConfigured

log = logging.getLogger(__name__)

LIVENESS = "liveness"
RECOGNITION = "recognition"
HEALTH_NAMES = {
    LIVENESS: liveness_pb2.DESCRIPTOR.services_by_name["LivenessService"].full_name,
    RECOGNITION: recognition_pb2.DESCRIPTOR.services_by_name["RecognitionService"].full_name,
}


class ServiceUnavailable(Exception):
    """A dependency could not answer; ``service`` names it, ``code`` says how it failed."""

    def __init__(self, service: str, code: str) -> None:
        super().__init__(f"{service} unavailable ({code})")
        self.service = service
        self.code = code


@dataclass(frozen=True)
class LivenessInput:
    """What liveness judges besides the frames: the challenge's actions and flash sequence, the capture's times."""

    actions: Sequence[str]
    frame_times_ms: Sequence[int]
    flash: Sequence[FlashStep] = ()
    flash_start_ms: int = 0


class CaptureRejected(Exception):
    """A service refused the capture itself (INVALID_ARGUMENT): the user should simply try again."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service


@dataclass
class _Channels:
    pid: int
    liveness: grpc.Channel
    recognition: grpc.Channel


class FaceServices:
    """Lazily opened channels, re-opened after a fork (gunicorn workers must not share gRPC channels)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._channels: _Channels | None = None

    def _get(self) -> _Channels:
        with self._lock:
            if self._channels is None or self._channels.pid != os.getpid():
                try:
                    self._channels = _Channels(
                        os.getpid(),
                        open_channel(
                            self.settings.liveness_target,
                            self.settings.grpc_security,
                            longest_call_seconds=self.settings.liveness_deadline_seconds,
                        ),
                        open_channel(
                            self.settings.recognition_target,
                            self.settings.grpc_security,
                            longest_call_seconds=self.settings.recognition_deadline_seconds,
                        ),
                    )
                except TlsNotConfigured:
                    # `serve` refuses to start like this; an app made some other way fails closed, never open.
                    log.error("grpc_tls_not_configured")
                    raise ServiceUnavailable("grpc", "TLS_NOT_CONFIGURED") from None
            return self._channels

    def close(self) -> None:
        with self._lock:
            if self._channels is not None and self._channels.pid == os.getpid():
                self._channels.liveness.close()
                self._channels.recognition.close()
            self._channels = None

    # -- calls ------------------------------------------------------------------------------------

    def _check_future(self, frames: Sequence[bytes], given: LivenessInput):  # type: ignore[no-untyped-def]
        stub = liveness_pb2_grpc.LivenessServiceStub(self._get().liveness)
        request = liveness_pb2.CheckRequest(
            frames=list(frames),
            challenge=[challenge_actions.VALUES[a] for a in given.actions],
            frame_times_ms=list(given.frame_times_ms),
            flash=[liveness_pb2.FlashStep(rgb=step.rgb, duration_ms=step.duration_ms) for step in given.flash],
            flash_start_ms=given.flash_start_ms,
        )
        return _timed(LIVENESS, "Check", stub.Check.future(request, timeout=self.settings.liveness_deadline_seconds))

    def check(self, frames: Sequence[bytes], given: LivenessInput) -> liveness_pb2.CheckResponse:
        """Liveness Check alone (the admin's flash calibration)."""
        return _results([(LIVENESS, self._check_future(frames, given))])[0]

    def check_and_verify(
        self, frames: Sequence[bytes], given: LivenessInput, templates: Sequence[Sequence[float]]
    ) -> tuple[liveness_pb2.CheckResponse, recognition_pb2.VerifyResponse]:
        """Liveness Check and recognition Verify at the same time; both answers or ServiceUnavailable."""
        stub = recognition_pb2_grpc.RecognitionServiceStub(self._get().recognition)
        verify_request = recognition_pb2.VerifyRequest(
            frames=list(frames), templates=[recognition_pb2.Template(embedding=list(t)) for t in templates]
        )
        calls = [
            (LIVENESS, self._check_future(frames, given)),
            (
                RECOGNITION,
                _timed(
                    RECOGNITION,
                    "Verify",
                    stub.Verify.future(verify_request, timeout=self.settings.recognition_deadline_seconds),
                ),
            ),
        ]
        check, verify = _results(calls)
        return check, verify

    def check_and_encode(
        self, frames: Sequence[bytes], given: LivenessInput
    ) -> tuple[liveness_pb2.CheckResponse, recognition_pb2.EncodeResponse]:
        stub = recognition_pb2_grpc.RecognitionServiceStub(self._get().recognition)
        calls = [
            (LIVENESS, self._check_future(frames, given)),
            (
                RECOGNITION,
                _timed(
                    RECOGNITION,
                    "Encode",
                    stub.Encode.future(
                        recognition_pb2.EncodeRequest(images=list(frames)),
                        timeout=self.settings.recognition_deadline_seconds,
                    ),
                ),
            ),
        ]
        check, encoded = _results(calls)
        return check, encoded

    def serving(self, service: str) -> bool:
        """grpc.health.v1 says SERVING for the service (within the health deadline)."""
        try:
            channels = self._get()
        except ServiceUnavailable:
            return False
        channel = channels.liveness if service == LIVENESS else channels.recognition
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=HEALTH_NAMES[service]),
                timeout=self.settings.health_deadline_seconds,
            )
        except grpc.RpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING


def _timed(dependency: str, method: str, future):  # type: ignore[no-untyped-def]
    """Count the call's latency and failure in the metrics when it finishes (not when we cancel it)."""
    started = time.perf_counter()

    def done(finished) -> None:  # type: ignore[no-untyped-def]
        code = finished.code()
        if code != grpc.StatusCode.CANCELLED:
            auth_metrics.grpc_call_done(dependency, method, time.perf_counter() - started, code)

    future.add_done_callback(done)
    return future


def _results(calls):  # type: ignore[no-untyped-def]
    """Wait for every future; on the first failure cancel the rest and raise."""
    results = []
    try:
        for service, future in calls:
            try:
                results.append(future.result())
            except grpc.RpcError as error:
                code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
                log.warning(
                    "grpc_call_failed",
                    extra={"fields": {"dependency": service, "code": getattr(code, "name", str(code))}},
                )
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise CaptureRejected(service, error.details() or "invalid capture") from None
                raise ServiceUnavailable(service, getattr(code, "name", str(code))) from None
    finally:
        for _service, future in calls:
            if not future.done():
                future.cancel()
    return results
