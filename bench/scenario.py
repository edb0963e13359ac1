"""The benchmark scenario: one person's clip split into an enrollment capture and login captures.

The enrollment capture is the browser's default: 10 consecutive frames at 6 fps (the first such window
of the clip, or the first one the liveness service accepts with the challenge when asked with
:func:`choose_enrollment`); login captures are 8-frame windows (1.33 s) of the frames after it. Which
windows contain the challenge action (a blink in d9.mp4) is asked from the running liveness service
itself, once, so the login load is made of captures the stack accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from bench.frames import DEFAULT_CLIP, Frame, load_clip, relative_times, windows
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc
from faceauth.recognition.v1 import recognition_pb2, recognition_pb2_grpc
from faceauth_common.grpc_client import open_channel
from faceauth_common.tls import GrpcSecurity

ENROLL_FRAMES = 10
DEADLINE_SECONDS = 30.0
CHALLENGE_ACTION = "BLINK"


@dataclass
class Scenario:
    clip: str
    frames: list[Frame]
    enroll: list[Frame]
    login_pool: list[Frame]

    def login_windows(self, size: int, stride: int = 2) -> list[list[Frame]]:
        return windows(self.login_pool, size, stride)

    def use_enrollment(self, capture: list[Frame]) -> None:
        """Enroll with ``capture``; logins use the frames after it."""
        self.enroll = capture
        self.login_pool = [frame for frame in self.frames if frame.index > capture[-1].index]


def build_scenario(clip: str = DEFAULT_CLIP) -> Scenario:
    frames = load_clip(clip)
    if len(frames) < ENROLL_FRAMES + 16:
        raise RuntimeError(f"{clip} is too short for the bench: {len(frames)} frames at 6 fps")
    scenario = Scenario(clip=clip, frames=frames, enroll=[], login_pool=[])
    scenario.use_enrollment(frames[:ENROLL_FRAMES])
    return scenario


class Stubs:
    """One channel per service, reused for every call (as auth-web does)."""

    def __init__(self, liveness_target: str, recognition_target: str) -> None:
        # The stack's client identity (GRPC_TLS_CA, GRPC_CLIENT_TLS_CERT/_KEY), as auth-web uses it.
        security = GrpcSecurity.client_from_env()
        self.liveness_channel = open_channel(liveness_target, security)
        self.recognition_channel = open_channel(recognition_target, security)
        self.liveness = liveness_pb2_grpc.LivenessServiceStub(self.liveness_channel)
        self.recognition = recognition_pb2_grpc.RecognitionServiceStub(self.recognition_channel)

    def close(self) -> None:
        self.liveness_channel.close()
        self.recognition_channel.close()

    def wait_ready(self, timeout: float = 120.0) -> None:
        for channel in (self.liveness_channel, self.recognition_channel):
            grpc.channel_ready_future(channel).result(timeout=timeout)

    def encode(self, frames: Sequence[Frame]) -> recognition_pb2.EncodeResponse:
        request = recognition_pb2.EncodeRequest(images=[frame.jpeg for frame in frames])
        return self.recognition.Encode(request, timeout=DEADLINE_SECONDS)

    def verify(self, frames: Sequence[Frame], templates: Sequence[Sequence[float]]) -> recognition_pb2.VerifyResponse:
        request = recognition_pb2.VerifyRequest(
            frames=[frame.jpeg for frame in frames],
            templates=[recognition_pb2.Template(embedding=list(vector)) for vector in templates],
        )
        return self.recognition.Verify(request, timeout=DEADLINE_SECONDS)

    def check(self, frames: Sequence[Frame], actions: Sequence[str]) -> liveness_pb2.CheckResponse:
        request = liveness_pb2.CheckRequest(
            frames=[frame.jpeg for frame in frames],
            challenge=[liveness_pb2.Action.Value(f"ACTION_{action}") for action in actions],
            frame_times_ms=relative_times(list(frames)),
        )
        return self.liveness.Check(request, timeout=DEADLINE_SECONDS)


def choose_enrollment(stubs: Stubs, scenario: Scenario, actions: Sequence[str]) -> bool:
    """Enroll with the first 10-frame window of the clip's first half that passes liveness with ``actions``
    (enrollment runs the same liveness check as login); False when none does (the first window is kept)."""
    half = scenario.frames[: len(scenario.frames) // 2]
    for window in windows(half, ENROLL_FRAMES, 3):
        if stubs.check(window, actions).live:
            scenario.use_enrollment(window)
            return True
    return False


def enroll_templates(stubs: Stubs, scenario: Scenario) -> list[list[float]]:
    """Embeddings of the enrollment frames that the recognition service accepts."""
    response = stubs.encode(scenario.enroll)
    templates = [list(face.embedding) for face in response.faces if len(face.embedding) == 128]
    if not templates:
        statuses = [recognition_pb2.FaceStatus.Name(face.status) for face in response.faces]
        raise RuntimeError(f"no usable face in the enrollment frames of {scenario.clip}: {statuses}")
    return templates


@dataclass(frozen=True)
class WindowVerdict:
    start_ms: int
    live: bool
    liveness_reason: str
    match: bool
    verify_reason: str

    @property
    def accepted(self) -> bool:
        return self.live and self.match


def classify_windows(
    stubs: Stubs, windows_: Sequence[Sequence[Frame]], templates: Sequence[Sequence[float]], actions: Sequence[str]
) -> list[WindowVerdict]:
    """What the services decide for each candidate login capture (used to pick captures that pass)."""
    verdicts = []
    for window in windows_:
        check = stubs.check(window, actions)
        verify = stubs.verify(window, templates)
        verdicts.append(
            WindowVerdict(
                start_ms=window[0].time_ms,
                live=check.live,
                liveness_reason=liveness_pb2.LivenessReason.Name(check.reason),
                match=verify.match,
                verify_reason=recognition_pb2.VerifyReason.Name(verify.reason),
            )
        )
    return verdicts
