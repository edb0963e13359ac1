"""Generated messages for every gRPC method of both model services, against the real servicers and models.

Most calls go straight to the servicer with a small stand-in for the gRPC context (fast, and a crash shows its
traceback); a share goes over a real channel to a real grpc.Server running the same servicers, including raw
bytes that are no valid protobuf at all. Every answer must be a response or a clear INVALID_ARGUMENT; an
exception escaping a servicer (the client would see UNKNOWN) or any other code is a failure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import free_port
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc
from faceauth.recognition.v1 import recognition_pb2, recognition_pb2_grpc
from faceauth_common.grpc_server import EngineSlot, _RequestContextInterceptor

from .budget import count, fuzz_settings
from .media import image_bytes, valid_images

INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


class FakeContext:
    """What the servicers use of grpc.ServicerContext; abort() raises, as the real one does."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float:
        return 60.0

    def invocation_metadata(self) -> tuple[()]:
        return ()


@dataclass
class Services:
    liveness: Any
    recognition: Any
    address: str


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    """The real engines (loaded once) behind the real servicers, in process and on a real server."""
    from liveness_service.config import Settings as LivenessSettings
    from liveness_service.server import add_servicers as add_liveness
    from liveness_service.server import load_engine as load_liveness
    from liveness_service.servicer import LivenessServicer
    from recognition_service.config import Settings as RecognitionSettings
    from recognition_service.server import add_servicers as add_recognition
    from recognition_service.server import load_engine as load_recognition
    from recognition_service.servicer import RecognitionServicer

    liveness_settings = LivenessSettings.from_env({})
    recognition_settings = RecognitionSettings.from_env()
    liveness_slot: EngineSlot[Any] = EngineSlot()
    liveness_slot.set(load_liveness(liveness_settings))
    recognition_slot: EngineSlot[Any] = EngineSlot()
    recognition_slot.set(load_recognition(recognition_settings))
    # The services' own interceptor (request ids, metrics, and the parsing that turns bytes that are no protobuf
    # into INVALID_ARGUMENT), as run_service installs it.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[_RequestContextInterceptor()])
    add_liveness(server, liveness_slot, liveness_settings)
    add_recognition(server, recognition_slot, recognition_settings)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    server.start()
    try:
        yield Services(
            LivenessServicer(liveness_slot, liveness_settings),
            RecognitionServicer(recognition_slot, recognition_settings),
            address,
        )
    finally:
        server.stop(grace=None)


def call(method: Any, request: Any, name: str) -> Any:
    """The servicer's answer, or None when it refused the input with INVALID_ARGUMENT."""
    count(name)
    try:
        response = method(request, FakeContext())
    except Aborted as refused:
        assert refused.code == grpc.StatusCode.INVALID_ARGUMENT, str(refused)
        assert refused.details, "a refusal says why"
        return None
    response.SerializeToString()  # what grpc does next; must not fail
    return response


# -- strategies -----------------------------------------------------------------------------------------------

frames = st.one_of(
    st.lists(image_bytes(), max_size=20),
    st.integers(0, 40).map(lambda n: [valid_images()[i % len(valid_images())] for i in range(n)]),
    st.lists(st.sampled_from(valid_images()), min_size=5, max_size=16),
)
actions = st.lists(st.one_of(st.sampled_from(list(liveness_pb2.Action.values())), INT32), max_size=8)


@st.composite
def frame_times(draw: st.DrawFn, frame_count: int) -> list[int]:
    kind = draw(st.sampled_from(["none", "matching", "any"]))
    if kind == "none":
        return []
    if kind == "matching":
        step = draw(st.one_of(st.integers(0, 400), st.integers(-(2**40), 2**40)))
        start = draw(st.one_of(st.just(0), INT64))
        return [max(-(2**63), min(2**63 - 1, start + step * i)) for i in range(frame_count)]
    return draw(st.lists(INT64, max_size=40))


@st.composite
def check_requests(draw: st.DrawFn) -> liveness_pb2.CheckRequest:
    captured = draw(frames)
    return liveness_pb2.CheckRequest(
        frames=captured, challenge=draw(actions), frame_times_ms=draw(frame_times(len(captured)))
    )


floats = st.floats(width=32)  # NaN, ±inf, subnormals, ±0
good_template = st.lists(st.floats(-1, 1, width=32), min_size=128, max_size=128)
templates = st.one_of(
    st.lists(good_template, max_size=3),
    st.lists(st.lists(floats, min_size=127, max_size=129), max_size=3),
    st.lists(st.lists(floats, max_size=200), max_size=3),
    st.integers(0, 80).map(lambda n: [[0.1] * 128] * n),
    st.lists(st.sampled_from([[math.nan] * 128, [math.inf] * 128, [1e38] * 128, [-0.0] * 128]), min_size=1, max_size=2),
)


@st.composite
def verify_requests(draw: st.DrawFn) -> recognition_pb2.VerifyRequest:
    return recognition_pb2.VerifyRequest(
        frames=draw(frames), templates=[recognition_pb2.Template(embedding=t) for t in draw(templates)]
    )


encode_requests = st.builds(lambda images: recognition_pb2.EncodeRequest(images=images), frames)


def mutated(message_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A valid message's wire bytes with a few bytes flipped, cut, or inserted: broken fields and lengths."""

    def mutate(args: tuple[bytes, list[tuple[int, int]], int]) -> bytes:
        data, flips, cut = args
        buffer = bytearray(data)
        for position, value in flips:
            if buffer:
                buffer[position % len(buffer)] = value
        return bytes(buffer[: cut % (len(buffer) + 1)]) if cut else bytes(buffer)

    return st.tuples(
        message_strategy.map(lambda message: message.SerializeToString()),
        st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=4),
        st.integers(0, 2**20),
    ).map(mutate)


# -- in process: every method -----------------------------------------------------------------------------------


@fuzz_settings(0.14)
@given(request=check_requests())
def test_liveness_check(services: Services, request: liveness_pb2.CheckRequest) -> None:
    response = call(services.liveness.Check, request, "grpc: liveness Check")
    if response is not None:
        assert len(response.frames) == len(request.frames)
        assert response.reason in liveness_pb2.LivenessReason.values()
        assert len(response.actions) == len(request.challenge)


@fuzz_settings(0.02)
@given(request=encode_requests)
def test_recognition_encode(services: Services, request: recognition_pb2.EncodeRequest) -> None:
    response = call(services.recognition.Encode, request, "grpc: recognition Encode")
    if response is not None:
        assert len(response.faces) == len(request.images)
        for face in response.faces:
            assert face.status in recognition_pb2.FaceStatus.values()
            assert all(math.isfinite(value) for value in face.embedding)


@fuzz_settings(0.07)
@given(request=verify_requests())
def test_recognition_verify(services: Services, request: recognition_pb2.VerifyRequest) -> None:
    response = call(services.recognition.Verify, request, "grpc: recognition Verify")
    if response is not None:
        assert len(response.frames) == len(request.frames)
        assert response.reason in recognition_pb2.VerifyReason.values()
        assert not response.match or response.matched_frames >= 1


@fuzz_settings(0.04)
@given(
    method=st.sampled_from(["Check", "Encode", "Verify"]),
    data=st.data(),
)
def test_broken_wire_bytes_in_process(services: Services, method: str, data: st.DataObject) -> None:
    """Mutated messages that still parse reach the servicer: same rules. (Unparsable ones: the next test.)"""
    message_type, strategy, handler = {
        "Check": (liveness_pb2.CheckRequest, check_requests(), services.liveness.Check),
        "Encode": (recognition_pb2.EncodeRequest, encode_requests, services.recognition.Encode),
        "Verify": (recognition_pb2.VerifyRequest, verify_requests(), services.recognition.Verify),
    }[method]
    raw = data.draw(mutated(strategy))
    try:
        request = message_type.FromString(raw)
    except Exception:  # DecodeError: grpc itself refuses these before any servicer runs
        count("grpc: broken wire bytes (not parsable)")
        return
    call(handler, request, f"grpc: broken wire bytes → {method}")


# -- over a real channel ------------------------------------------------------------------------------------------

METHODS = {
    "Check": ("/faceauth.liveness.v1.LivenessService/Check", check_requests()),
    "Encode": ("/faceauth.recognition.v1.RecognitionService/Encode", encode_requests),
    "Verify": ("/faceauth.recognition.v1.RecognitionService/Verify", verify_requests()),
}


@pytest.fixture(scope="module")
def channel(services: Services) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(services.address) as opened:
        grpc.channel_ready_future(opened).result(timeout=10)
        yield opened


@fuzz_settings(0.03)
@given(method=st.sampled_from(sorted(METHODS)), data=st.data())
def test_over_a_real_channel(channel: grpc.Channel, method: str, data: st.DataObject) -> None:
    """Raw bytes (valid, mutated or garbage) to each method: a response or INVALID_ARGUMENT, never UNKNOWN (a
    servicer crash) or INTERNAL (grpc's own answer to bytes that are no protobuf, before the interceptor)."""
    path, strategy = METHODS[method]
    raw = data.draw(
        st.one_of(strategy.map(lambda message: message.SerializeToString()), mutated(strategy), st.binary(max_size=64))
    )
    call_raw = channel.unary_unary(path)  # bytes in, bytes out: no client-side (de)serialisation
    count(f"grpc: real channel {method}")
    try:
        call_raw(raw, timeout=60)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())


@pytest.mark.parametrize("method", sorted(METHODS))
def test_regression_bytes_that_are_no_protobuf_are_invalid_argument(channel: grpc.Channel, method: str) -> None:
    """Were INTERNAL ("Exception deserializing request!"), which reads like a server fault."""
    for garbage in (b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08" + b"\x80" * 11):
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(METHODS[method][0])(garbage, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
        assert "not a valid protobuf" in (refused.value.details() or "")


def test_the_server_still_answers_after_the_fuzzing(channel: grpc.Channel) -> None:
    stub = liveness_pb2_grpc.LivenessServiceStub(channel)
    flash = [liveness_pb2.FlashStep(rgb=rgb, duration_ms=340) for rgb in (0xFF0000, 0x0000FF)]
    answer = stub.Check(liveness_pb2.CheckRequest(frames=list(valid_images()[:6]), flash=flash), timeout=60)
    assert len(answer.frames) == 6
    verify = recognition_pb2_grpc.RecognitionServiceStub(channel).Verify(
        recognition_pb2.VerifyRequest(
            frames=[valid_images()[0]], templates=[recognition_pb2.Template(embedding=[0.0] * 128)]
        ),
        timeout=60,
    )
    assert len(verify.frames) == 1
