"""Both model services under concurrent load, and a worker that dies.

The soak: each service with 2 worker processes, 8 client threads sending a mix of Encode, Verify and
Check calls on real webcam frames → no crash, only OK answers. Before the engines kept one dlib object
per thread or behind a lock, a shared HOG detector segfaulted a worker within ~20 such calls.
The restart: a worker killed with SIGSEGV is logged, counted and replaced, and the service answers
meanwhile and afterwards.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import grpc
import pytest

from conftest import GrpcTls, free_port, secure_channel, stop_process, wait_for_serving
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc
from faceauth.recognition.v1 import recognition_pb2, recognition_pb2_grpc

RECOGNITION = "faceauth.recognition.v1.RecognitionService"
LIVENESS = "faceauth.liveness.v1.LivenessService"
SOAK_THREADS = 8
SOAK_CALLS = 240
CALL_TIMEOUT = 60


@dataclass
class Service:
    address: str
    process: subprocess.Popen
    log: IO[str]
    metrics_port: int
    tls: GrpcTls

    def channel(self) -> grpc.Channel:
        """A new connection with auth-web's client certificate (the services require mutual TLS)."""
        return secure_channel(self.address, self.tls.client)

    def log_lines(self) -> list[dict]:
        self.log.seek(0)
        return [json.loads(line) for line in self.log.read().splitlines() if line.startswith("{")]


@contextmanager
def running(module: str, prefix: str, service_name: str, tls: GrpcTls, **env: str) -> Iterator[Service]:
    address = f"127.0.0.1:{free_port()}"
    metrics_port = free_port()
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            env={
                **os.environ,
                **tls.env,
                f"{prefix}_LISTEN": address,
                f"{prefix}_WORKERS": "2",
                f"{prefix}_THREADS": "4",
                f"{prefix}_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for_serving(address, service_name, process, security=tls.client)
            service = Service(address, process, log, metrics_port, tls)
            serving_workers(service)  # both workers: one still loading its model would refuse its calls
            yield service
        finally:
            stop_process(process, timeout=60)


def webcam_frames(video: Path, count: int, step: int = 3) -> list[bytes]:
    """Every ``step``-th frame of the clip, scaled to 640 px wide, as the browser's JPEGs."""
    capture = cv2.VideoCapture(str(video))
    frames: list[bytes] = []
    index = 0
    while len(frames) < count:
        ok, image = capture.read()
        assert ok, f"{video} has fewer than {count * step} frames"
        if index % step == 0:
            image = cv2.resize(image, (640, round(image.shape[0] * 640 / image.shape[1])))
            frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        index += 1
    capture.release()
    return frames


@pytest.fixture(scope="module")
def frames(test_data: Path) -> list[bytes]:
    return webcam_frames(test_data / "video" / "liveportrait" / "d9.mp4", 10)


def serving_workers(service: Service, count: int = 2, timeout: float = 120) -> list[int]:
    """Pids of the worker processes that have loaded their model and not exited, per the service's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = service.log_lines()
        exited = {line["worker_pid"] for line in lines if line["event"] == "worker_exited"}
        listening = {line["pid"] for line in lines if line["event"] == "listening"}
        serving = [line["pid"] for line in lines if line["event"] == "serving" and line["pid"] in listening - exited]
        if len(serving) >= count:
            return serving
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} workers serving: {service.log_lines()[-10:]}")


def encode_ok(service: Service, image: bytes) -> bool:
    with service.channel() as channel:
        response = recognition_pb2_grpc.RecognitionServiceStub(channel).Encode(
            recognition_pb2.EncodeRequest(images=[image]), timeout=CALL_TIMEOUT, wait_for_ready=True
        )
    return response.faces[0].status == recognition_pb2.FACE_STATUS_OK


def metric(service: Service, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return sum(values)


def test_concurrent_mixed_calls_never_crash_a_worker(frames: list[bytes], grpc_tls: GrpcTls) -> None:
    with (
        running("recognition_service", "RECOGNITION", RECOGNITION, grpc_tls) as recognition,
        running("liveness_service", "LIVENESS", LIVENESS, grpc_tls) as liveness,
    ):
        recognition_channel = recognition.channel()
        liveness_channel = liveness.channel()
        recognize = recognition_pb2_grpc.RecognitionServiceStub(recognition_channel)
        check = liveness_pb2_grpc.LivenessServiceStub(liveness_channel)
        enrolled = recognize.Encode(recognition_pb2.EncodeRequest(images=frames[:2]), timeout=CALL_TIMEOUT)
        assert [face.status for face in enrolled.faces] == [recognition_pb2.FACE_STATUS_OK] * 2
        templates = [recognition_pb2.Template(embedding=face.embedding) for face in enrolled.faces]

        def call(index: int) -> str:
            pick = random.Random(index)
            kind = ("encode", "verify", "check")[index % 3]
            try:
                if kind == "encode":
                    recognize.Encode(recognition_pb2.EncodeRequest(images=pick.sample(frames, 2)), timeout=CALL_TIMEOUT)
                elif kind == "verify":
                    request = recognition_pb2.VerifyRequest(frames=pick.sample(frames, 4), templates=templates)
                    assert recognize.Verify(request, timeout=CALL_TIMEOUT).match
                else:
                    start = pick.randrange(0, 4)
                    request = liveness_pb2.CheckRequest(
                        frames=frames[start : start + 6],
                        challenge=[liveness_pb2.ACTION_BLINK],
                        frame_times_ms=[k * 100 for k in range(6)],
                        # The flash check is on by default: it runs too (unlit frames: answered, not reflected).
                        flash=[liveness_pb2.FlashStep(rgb=rgb, duration_ms=340) for rgb in (0xFF0000, 0x00FF00)],
                    )
                    check.Check(request, timeout=CALL_TIMEOUT)
            except grpc.RpcError as error:
                return f"{kind}:{error.code().name}"
            return f"{kind}:OK"

        with ThreadPoolExecutor(SOAK_THREADS) as pool:
            outcomes = Counter(pool.map(call, range(SOAK_CALLS)))
        recognition_channel.close()
        liveness_channel.close()
        assert recognition.process.poll() is None and liveness.process.poll() is None
        crashed = [line for s in (recognition, liveness) for line in s.log_lines() if line["event"] == "worker_exited"]
    assert crashed == []
    assert set(outcomes) == {"encode:OK", "verify:OK", "check:OK"}, outcomes
    assert sum(outcomes.values()) == SOAK_CALLS


def test_a_worker_killed_by_sigsegv_is_replaced_and_the_service_keeps_answering(
    frames: list[bytes], grpc_tls: GrpcTls
) -> None:
    with running("recognition_service", "RECOGNITION", RECOGNITION, grpc_tls) as recognition:
        first, second = serving_workers(recognition)
        os.kill(first, signal.SIGSEGV)
        killed_at = time.monotonic()
        while not any(line["event"] == "worker_exited" for line in recognition.log_lines()):
            time.sleep(0.1)
        # The sibling serves while the replacement loads its model, then both do; a call in flight on
        # the killed worker would fail, so each call here opens a new connection.
        assert encode_ok(recognition, frames[0])
        workers = serving_workers(recognition)
        replaced_in = time.monotonic() - killed_at
        assert first not in workers and second in workers
        assert all(encode_ok(recognition, frame) for frame in frames[:4])
        assert metric(recognition, "faceauth_worker_restarts_total") == 1
        assert recognition.process.poll() is None
        recognition.process.send_signal(signal.SIGTERM)
        assert recognition.process.wait(timeout=60) == 0
        lines = recognition.log_lines()
    exited = [line for line in lines if line["event"] == "worker_exited"]
    assert [(line["worker_pid"], line["signal"]) for line in exited] == [(first, "SIGSEGV")]
    assert sum(line["event"] == "worker_restarted" for line in lines) == 1
    assert replaced_in < 60


def test_a_crash_loop_stops_the_service_instead_of_restarting_forever(grpc_tls: GrpcTls) -> None:
    with running(
        "recognition_service", "RECOGNITION", RECOGNITION, grpc_tls, RECOGNITION_MAX_RESTARTS="0"
    ) as recognition:
        worker, _ = serving_workers(recognition)
        os.kill(worker, signal.SIGSEGV)
        assert recognition.process.wait(timeout=60) == 1
        events = [line["event"] for line in recognition.log_lines()]
    assert "worker_crash_loop" in events and "worker_restarted" not in events
