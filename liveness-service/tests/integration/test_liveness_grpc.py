"""The real liveness server over gRPC: verdicts on real frames, bad input, deadlines (one server per module)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import cv2
import grpc
import numpy as np
import pytest

from conftest import GrpcTls, free_port, secure_channel, stop_process, wait_for_serving
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc

SERVICE = "faceauth.liveness.v1.LivenessService"
REASON = liveness_pb2.LivenessReason.Value


@pytest.fixture(scope="module")
def server(grpc_tls: GrpcTls):
    address = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "liveness_service"],
            env={**os.environ, **grpc_tls.env, "LIVENESS_LISTEN": address, "LIVENESS_THREADS": "2"},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        channel = secure_channel(address, grpc_tls.client)
        try:
            wait_for_serving(address, SERVICE, process, security=grpc_tls.client)
            yield liveness_pb2_grpc.LivenessServiceStub(channel), process, log
        finally:
            channel.close()
            stop_process(process)


# A flash sequence for requests about other checks (their frames are not lit by it).
UNLIT = {
    "flash": [liveness_pb2.FlashStep(rgb=rgb, duration_ms=400) for rgb in (0xFF0000, 0x00FF00, 0x0000FF, 0xFFFF00)],
    "flash_start_ms": -50,
}


def check(stub, frames, challenge=(), times=(), timeout=30.0, flash=None):
    request = liveness_pb2.CheckRequest(
        frames=frames, challenge=list(challenge), frame_times_ms=list(times), **(UNLIT if flash is None else flash)
    )
    return stub.Check(request, timeout=timeout)


def test_d9_blink_capture_is_live_with_diagnostics(server, d9_flashed):
    stub, _, log = server
    capture = d9_flashed
    response = check(stub, capture.jpegs, [liveness_pb2.ACTION_BLINK], capture.times_ms, flash=capture.flash_proto())
    assert response.live, response
    assert response.reason == REASON("LIVENESS_REASON_LIVE") and list(response.failed_checks) == []
    assert len(response.frames) == 10
    assert all(f.face_count == 1 and f.box.right > f.box.left for f in response.frames)
    assert all(0.0 <= f.live_score <= 1.0 and f.eye_aspect_ratio > 0 for f in response.frames)
    assert all(f.HasField("live_score") and f.HasField("yaw_degrees") for f in response.frames)
    # The first frame has no previous one: the continuity measurements are unset, not a sentinel.
    first, second = response.frames[0], response.frames[1]
    assert not first.HasField("difference_to_previous") and not first.HasField("colour_change_to_previous")
    assert second.difference_to_previous > 0 and second.HasField("colour_change_to_previous")
    assert response.HasField("live_score") and response.live_score >= response.live_threshold > 0
    [blink] = response.actions
    assert blink.action == liveness_pb2.ACTION_BLINK and blink.performed and blink.frame_index >= 1
    assert response.model_version.startswith("silent-face-fused")  # both Silent-Face models by default
    # The flash result and its per-frame measurements.
    assert response.HasField("flash") and response.flash.reflected
    assert not response.HasField("planarity_residual")  # no turn in this capture: planarity not judged
    assert response.flash.score >= response.flash.threshold > 0 and response.flash.face_gain > 0
    assert 0 <= response.flash.lag_ms <= 300 and response.flash.covered_steps >= 3 and response.flash.detail == ""
    assert all(len(f.skin_rgb) == 3 and len(f.background_rgb) == 3 for f in response.frames)
    assert sum(f.HasField("flash_expected_rgb") for f in response.frames) >= 8
    log.seek(0)
    checked = [line for line in log.read().splitlines() if '"liveness_checked"' in line]
    assert checked and '"reflected": true' in checked[-1], checked[-1:]


def test_the_same_capture_without_its_reflection_is_refused(server, d9_capture, d9_flashed):
    """A replay: the right frames, but recorded without this sequence's light on the face."""
    stub, _, _ = server
    flash = d9_flashed.flash_proto()
    response = check(stub, d9_capture.jpegs, [liveness_pb2.ACTION_BLINK], d9_capture.times_ms, flash=flash)
    assert not response.live and response.reason == REASON("LIVENESS_REASON_FLASH_NOT_REFLECTED")
    assert list(response.failed_checks) == [REASON("LIVENESS_REASON_FLASH_NOT_REFLECTED")]
    assert not response.flash.reflected and response.flash.detail


def test_turn_left_is_not_met_and_a_still_image_is_static(server, d9_capture, d9_flashed):
    stub, _, _ = server
    flash = d9_flashed.flash_proto()
    turn = check(stub, d9_flashed.jpegs, [liveness_pb2.ACTION_TURN_LEFT], d9_flashed.times_ms, flash=flash)
    assert not turn.live and turn.reason == REASON("LIVENESS_REASON_CHALLENGE_NOT_MET")
    assert not turn.actions[0].performed and not turn.actions[0].HasField("frame_index")
    still = check(stub, [d9_capture.jpegs[0]] * 8, [], [i * 167 for i in range(8)])
    assert not still.live and still.reason == REASON("LIVENESS_REASON_STATIC_CAPTURE")


def _png(width: int, height: int) -> bytes:
    return cv2.imencode(".png", np.zeros((height, width, 3), np.uint8))[1].tobytes()


@pytest.mark.parametrize(
    ("frames", "challenge", "times", "message"),
    [
        ([], [], [], "no images"),
        ([b"not an image"], [], [], "image 0"),
        ([b"\xff\xd8\xff" + b"\x00" * 100], [], [], "image 0"),
        (["JPEG"] * 25, [], [], "limit is 24"),
        (["JPEG"], [liveness_pb2.ACTION_UNSPECIFIED], [], "action"),
        (["JPEG"] * 2, [], [0], "frame_times_ms"),
        (["JPEG"] * 2, [liveness_pb2.ACTION_BLINK] * 5, [], "limit is 4"),
        ([_png(2100, 2000)], [], [], "pixels"),
    ],
)
def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(
    server, d9_capture, frames, challenge, times, message
):
    stub, process, _ = server
    frames = [d9_capture.jpegs[0] if f == "JPEG" else f for f in frames]
    with pytest.raises(grpc.RpcError) as raised:
        check(stub, frames, challenge, times)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
    assert process.poll() is None
    assert check(stub, d9_capture.jpegs[:2], [], [0, 167]).frames  # still serving


def test_an_oversize_frame_is_refused_before_decoding(server, d9_capture):
    stub, _, _ = server
    noise = np.random.default_rng(1).integers(0, 255, (1400, 1400, 3), dtype=np.uint8)
    big = cv2.imencode(".png", noise)[1].tobytes()
    assert len(big) > 2 * 1024 * 1024
    with pytest.raises(grpc.RpcError) as raised:
        check(stub, [big], [], [])
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bytes" in raised.value.details()


def test_a_request_without_a_flash_sequence_is_invalid(server, d9_capture):
    stub, _, _ = server
    with pytest.raises(grpc.RpcError) as raised:
        check(stub, d9_capture.jpegs, [liveness_pb2.ACTION_BLINK], d9_capture.times_ms, flash={})
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no flash sequence" in raised.value.details()


def test_an_expired_deadline_is_honoured(server, d9_capture, d9_flashed):
    stub, _, log = server
    frames = d9_capture.jpegs + d9_capture.jpegs[:6]
    with pytest.raises(grpc.RpcError) as raised:
        check(stub, frames, [liveness_pb2.ACTION_BLINK], [], timeout=0.05)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    flash = d9_flashed.flash_proto()
    response = check(stub, d9_flashed.jpegs, [liveness_pb2.ACTION_BLINK], d9_flashed.times_ms, flash=flash)
    assert response.live
    # The server abandoned the expired call between frames instead of finishing it.
    log.seek(0)
    lines = log.read().splitlines()
    assert any('"event": "rpc"' in line and "DEADLINE_EXCEEDED" in line for line in lines), lines[-5:]


def test_a_turned_photo_and_retimed_frames_have_their_reasons(server, d9_capture):
    """Injected stills through the real server: a photo turned like a head (PLANAR_MOTION, with its residual) and a
    clip's frames sent with stretched times (FRAME_TIMING)."""
    from liveness_service.tools import injection, reflection

    stub, _, _ = server
    photo = d9_capture.rgb()[0]
    turned = reflection.encode_jpeg(injection.turned_photo(photo, 40, np.random.default_rng(1)))
    times = [i * 100 for i in range(len(turned))]
    response = check(stub, turned, [liveness_pb2.ACTION_TURN_LEFT], times)
    assert REASON("LIVENESS_REASON_PLANAR_MOTION") in response.failed_checks, response.failed_checks
    assert response.actions[0].performed and response.HasField("planarity_residual")
    assert 0 < response.planarity_residual <= 0.016
    retimed = check(stub, d9_capture.jpegs, [liveness_pb2.ACTION_BLINK], [t * 3 for t in d9_capture.times_ms])
    assert REASON("LIVENESS_REASON_FRAME_TIMING") in retimed.failed_checks
