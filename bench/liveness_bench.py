"""Liveness latency: per frame and per request (8 and 15 frames) for each signal and for the whole call.

Frames: d9.mp4 sampled like the browser sends them (bench.frames: 640x480 JPEG q85, 6 fps). Stages are timed
in-process with the service's own functions; the whole call is timed in-process (decode + engine.check) and
over gRPC against a real `python -m liveness_service` (one process, default settings).

    .venv/bin/python bench/liveness_bench.py [--repeats 20] [--out bench/results/liveness_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.frames import load_clip
from bench.processes import free_port
from faceauth_common.grpc_client import secure_channel
from faceauth_common.imaging import decode_frames
from faceauth_common.tls import GrpcTls
from liveness_service.challenge import judge_challenge
from liveness_service.config import Settings
from liveness_service.landmarks import eye_aspect_ratio, head_yaw_degrees
from liveness_service.sanity import (
    colour_changes,
    colour_signature,
    face_patch,
    judge_sanity,
    patch_differences,
)
from liveness_service.verdict import LivenessEngine

SERVICE = "faceauth.liveness.v1.LivenessService"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(samples_ms, 50)), 2),
        "p95": round(float(np.percentile(samples_ms, 95)), 2),
        "mean": round(float(np.mean(samples_ms)), 2),
    }


class _Stopwatch:
    """Wall-clock and this thread's CPU time per stage (CPU time is what the stage costs on an idle core)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._started = (0.0, 0.0)

    def start(self) -> None:
        self._started = (time.perf_counter(), time.thread_time())

    def stop(self, stage: str) -> None:
        self.wall[stage] = (time.perf_counter() - self._started[0]) * 1000
        self.cpu[stage] = (time.thread_time() - self._started[1]) * 1000


def time_stages(engine: LivenessEngine, jpegs: list[bytes], times: list[int]) -> _Stopwatch:
    settings = engine.settings
    watch = _Stopwatch()
    watch.start()
    images = decode_frames(jpegs, settings.limits)
    watch.stop("decode")
    watch.start()
    boxes = [engine.analyzer.detect(image)[0] for image in images]
    watch.stop("face_detection")
    watch.start()
    points = [engine.analyzer.landmarks(image, box) for image, box in zip(images, boxes, strict=True)]
    watch.stop("landmarks")
    watch.start()
    ears = [eye_aspect_ratio(p) for p in points]
    yaws = [head_yaw_degrees(p, image.shape[1], image.shape[0]) for p, image in zip(points, images, strict=True)]
    judge_challenge(["BLINK", "TURN_LEFT"], ears, yaws, settings.challenge)
    watch.stop("active_ear_yaw_judge")
    watch.start()
    diffs = patch_differences([face_patch(image, box) for image, box in zip(images, boxes, strict=True)])
    colours = colour_changes([colour_signature(image, box) for image, box in zip(images, boxes, strict=True)])
    judge_sanity([1] * len(images), boxes, diffs, colours, float(times[-1]), settings.sanity)
    watch.stop("sanity_patches_judge")
    watch.start()
    crops = [member.crops(images, boxes) for member in engine.passive.members]
    watch.stop("passive_crops")
    watch.start()
    for member, member_crops in zip(engine.passive.members, crops, strict=True):
        member.scorer.score(member_crops)
    watch.stop("passive_cnn_batch")
    watch.start()
    engine.check(decode_frames(jpegs, settings.limits), ["BLINK"], times)
    watch.stop("whole_call_in_process")
    return watch


def grpc_latencies(requests: dict[int, tuple[list[bytes], list[int]]], repeats: int) -> dict[str, dict[str, float]]:
    import tempfile

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc

    address = f"127.0.0.1:{free_port()}"
    tls = GrpcTls(Path(tempfile.mkdtemp(prefix="bench-grpc-tls-")))  # mutual TLS, as in production
    process = subprocess.Popen(
        [sys.executable, "-m", "liveness_service"],
        env={**os.environ, **tls.env, "LIVENESS_LISTEN": address, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, dict[str, float]] = {}
    try:
        with secure_channel(address, tls.client) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1).status == 1:
                        break
                except grpc.RpcError:
                    time.sleep(0.2)
            stub = liveness_pb2_grpc.LivenessServiceStub(channel)
            for count, (jpegs, times) in requests.items():
                request = liveness_pb2.CheckRequest(
                    frames=jpegs, challenge=[liveness_pb2.ACTION_BLINK], frame_times_ms=times
                )
                stub.Check(request, timeout=30)
                samples = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    stub.Check(request, timeout=30)
                    samples.append((time.perf_counter() - started) * 1000)
                results[f"{count}_frames"] = percentiles(samples)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/liveness_bench.json"))
    parser.add_argument("--no-grpc", action="store_true")
    args = parser.parse_args()
    frames = load_clip("liveportrait/d9.mp4")
    engine = LivenessEngine.load(Settings.from_env({}))
    requests = {}
    for count in (8, 15):
        window = frames[:count]
        requests[count] = ([f.jpeg for f in window], [f.time_ms - window[0].time_ms for f in window])
    in_process: dict[str, object] = {}
    for count, (jpegs, times) in requests.items():
        time_stages(engine, jpegs, times)  # warm
        runs = [time_stages(engine, jpegs, times) for _ in range(args.repeats)]
        stages = {}
        for stage in runs[0].wall:
            wall = [run.wall[stage] for run in runs]
            cpu = [run.cpu[stage] for run in runs]
            stages[stage] = {
                "wall_per_request": percentiles(wall),
                "cpu_per_request": percentiles(cpu),
                "cpu_per_frame_mean": round(float(np.mean(cpu)) / count, 2),
            }
        in_process[f"{count}_frames"] = stages
    result = {
        "clip": "liveportrait/d9.mp4 (640x480 JPEG q85, 6 fps)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_at_start": os.getloadavg()},
        "note": "wall = elapsed; cpu = this thread's CPU time (the cost on an idle core, robust to other load)",
        "repeats": args.repeats,
        "tflite_threads": engine.settings.tflite_threads,
        "in_process_ms": in_process,
        "grpc_whole_call_ms": {} if args.no_grpc else grpc_latencies(requests, args.repeats),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
