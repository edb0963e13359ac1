"""Recognition service latency: Encode/Verify per frame and per 8-frame request, 1 and 4 clients.

    .venv/bin/python -m bench.recognition_bench [--quick]

Starts the real server (``python -m recognition_service``) once per configuration on a free port and
talks gRPC to it, like auth-web does. Frames are real video (../shared/data/video) prepared like the
browser's capture (640×480 JPEG q85 at 6 fps, see bench/frames.py). Enrollment templates are Encode
results of other frames of the same clip; impostor requests send one clip against another's templates.
An in-process stage breakdown (decode, detection at several working sizes, landmarks, embedding) and the
distances within one capture (what RECOGNITION_MAX_INTRA_DISTANCE must allow) are measured too.
Writes bench/results/recognition.json and .md. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import frames as bench_frames
from bench import report
from bench.processes import free_port
from faceauth.recognition.v1 import recognition_pb2 as pb
from faceauth.recognition.v1 import recognition_pb2_grpc
from faceauth_common.grpc_client import secure_channel
from faceauth_common.imaging import ImageLimits, decode_image
from faceauth_common.tls import GrpcTls

CLIPS = ("liveportrait/d9.mp4", "liveportrait/d12.mp4", "liveportrait/d18.mp4", "retalking/1.mp4", "retalking/2.mp4")
REQUEST_FRAMES = 8
CONFIGS = {
    # The shipped defaults: 4 runs, frames detected only until each run has a usable face, stop as soon as
    # the decision is made.
    "default": {},
    # Every usable frame embedded and compared (what a naive implementation does).
    # Every frame detected first, best-quality frames embedded (the shipped behaviour before lazy observation).
    "observe-all": {"RECOGNITION_VERIFY_OBSERVE_ALL": "true"},
    "embed-all": {
        "RECOGNITION_VERIFY_MAX_EMBEDDINGS": "0",
        "RECOGNITION_VERIFY_EARLY_STOP": "false",
        "RECOGNITION_VERIFY_OBSERVE_ALL": "true",
    },
}
CONTENTION = (
    "measured while other engineers' builds, tests and training shared the same 2 cores; "
    "a later benchmark re-measures on a quiet machine"
)


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        tls = GrpcTls(Path(tempfile.mkdtemp(prefix="bench-grpc-tls-")))  # mutual TLS, as in production
        self.process = subprocess.Popen(
            [sys.executable, "-m", "recognition_service"],
            env={**os.environ, **tls.env, **env, "RECOGNITION_LISTEN": self.address, "LOG_LEVEL": "WARNING"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.channel = secure_channel(self.address, tls.client)
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("recognition service exited during start")
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("recognition service not SERVING")
        self.stub = recognition_pb2_grpc.RecognitionServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


def timed(calls: list, clients: int) -> tuple[list[float], float]:
    """Run the zero-argument ``calls`` with ``clients`` concurrent callers; (latencies, wall seconds)."""

    def one(call):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, calls))
    return latencies, time.perf_counter() - started


def load_captures() -> dict[str, list[bytes]]:
    return {clip: [frame.jpeg for frame in bench_frames.load_clip(clip)] for clip in CLIPS}


def enroll(stub, captures: dict[str, list[bytes]]) -> dict[str, list[pb.Template]]:  # type: ignore[no-untyped-def]
    """Three templates per clip from frames outside the first login windows (end of the clip)."""
    templates = {}
    for clip, jpegs in captures.items():
        response = stub.Encode(pb.EncodeRequest(images=jpegs[-3:]), timeout=60)
        templates[clip] = [pb.Template(embedding=f.embedding) for f in response.faces if f.status == pb.FACE_STATUS_OK]
        if not templates[clip]:
            raise RuntimeError(f"no usable enrollment frame in {clip}")
    return templates


def make_scenarios(stub, singles, genuine, impostor) -> dict:  # type: ignore[no-untyped-def]
    """Named calls taking a request number ``k`` (requests cycle through the prepared inputs)."""

    def encode_one(k: int):  # type: ignore[no-untyped-def]
        return stub.Encode(pb.EncodeRequest(images=[singles[k % len(singles)]]), timeout=60)

    def encode_eight(k: int):  # type: ignore[no-untyped-def]
        return stub.Encode(pb.EncodeRequest(images=genuine[k % len(genuine)][0]), timeout=60)

    def verify(pairs):  # type: ignore[no-untyped-def]
        def call(k: int):  # type: ignore[no-untyped-def]
            frames, templates = pairs[k % len(pairs)]
            return stub.Verify(pb.VerifyRequest(frames=frames, templates=templates), timeout=60)

        return call

    return {
        "Encode, 1 frame": encode_one,
        "Encode, 8 frames": encode_eight,
        "Verify, 8 frames, genuine": verify(genuine),
        "Verify, 8 frames, impostor": verify(impostor),
    }


def rpc_benchmarks(captures, repeats: int) -> tuple[dict, list]:  # type: ignore[no-untyped-def]
    results: dict = {}
    rows = []
    windows = {
        clip: bench_frames.windows([bench_frames.Frame(j, 0, i) for i, j in enumerate(jpegs[:-3])], 8, 4)
        for clip, jpegs in captures.items()
    }
    for name, env in CONFIGS.items():
        server = Server(env)
        try:
            stub = server.stub
            templates = enroll(stub, captures)
            clips = list(captures)
            genuine = [([f.jpeg for f in w], templates[clip]) for clip in clips for w in windows[clip]]
            impostor = [
                ([f.jpeg for f in w], templates[clips[(i + 1) % len(clips)]])
                for i, clip in enumerate(clips)
                for w in windows[clip]
            ]
            singles = [jpeg for clip in clips for jpeg in captures[clip][:-3]]
            scenarios = make_scenarios(stub, singles, genuine, impostor)
            if name != "default":
                scenarios = {k: v for k, v in scenarios.items() if k.startswith("Verify")}
            outcomes = {}
            for label, fn in scenarios.items():
                fn(0)  # warm the channel
                if label.startswith("Verify"):
                    replies = [fn(k) for k in range(len(genuine))]
                    outcomes[label] = {
                        "decisions": {
                            r: sum(pb.VerifyReason.Name(x.reason) == r for x in replies)
                            for r in sorted({pb.VerifyReason.Name(x.reason) for x in replies})
                        },
                        "compared_frames_mean": round(float(np.mean([x.compared_frames for x in replies])), 2),
                    }
                for clients in (1, 4):
                    count = repeats * clients
                    latencies, wall = timed([functools.partial(fn, k) for k in range(count)], clients)
                    summary = report.summarise_ms(latencies)
                    per_frame = 8 if "8 frames" in label else 1
                    entry = {
                        **summary,
                        "clients": clients,
                        "requests_per_second": round(count / wall, 2),
                        "median_ms_per_frame": round(summary["median_ms"] / per_frame, 1),
                    }
                    results.setdefault(name, {}).setdefault(label, {})[f"{clients} client(s)"] = entry
                    rows.append(
                        (
                            name,
                            label,
                            clients,
                            summary["median_ms"],
                            summary["p95_ms"],
                            entry["median_ms_per_frame"],
                            entry["requests_per_second"],
                            outcomes.get(label, {}).get("compared_frames_mean"),
                        )
                    )
                if label in outcomes:
                    results[name][label]["outcome"] = outcomes[label]
        finally:
            server.close()
    return results, rows


def stage_breakdown(captures, repeats: int) -> tuple[dict, list]:  # type: ignore[no-untyped-def]
    """In-process cost of each step on one 640×480 frame (single thread)."""
    from recognition_service.engine import DetectionSettings, FaceEngine
    from recognition_service.quality import QualitySettings

    engine = FaceEngine.load()
    limits = ImageLimits()
    jpegs = [j for clip in CLIPS for j in captures[clip][:6]]
    images = [decode_image(j, limits) for j in jpegs]
    quality = QualitySettings()

    def per_call(fn, items) -> float:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        for _ in range(repeats):
            for item in items:
                fn(item)
        return (time.perf_counter() - started) * 1000 / (repeats * len(items))

    stages = {"decode JPEG 640x480": per_call(lambda j: decode_image(j, limits), jpegs)}
    for side, upsample in ((640, 0), (400, 0), (320, 0), (640, 1)):
        settings = DetectionSettings(max_side=side, upsample=upsample)
        stages[f"HOG detect, working side {side}, upsample {upsample}"] = per_call(
            lambda image, s=settings: engine.detect(image, s), images
        )
    login = DetectionSettings(max_side=400)
    observations = [engine.observe(image, login, quality) for image in images]
    usable = [(i, o) for i, o in zip(images, observations, strict=True) if o.landmarks is not None]
    stages["observe (detect 400 + landmarks + quality)"] = per_call(
        lambda im: engine.observe(im, login, quality), images
    )
    stages["embedding (ResNet, 1 face)"] = per_call(lambda pair: engine.embed(*pair), usable[:6])
    rows = [(stage, round(ms, 1)) for stage, ms in stages.items()]
    return {k: round(v, 2) for k, v in stages.items()}, rows


def intra_capture_distances(captures) -> dict:  # type: ignore[no-untyped-def]
    """Largest embedding distance between two frames of one 8-frame capture, per clip."""
    from recognition_service.engine import DetectionSettings, FaceEngine, FaceStatus
    from recognition_service.quality import QualitySettings

    engine = FaceEngine.load()
    limits = ImageLimits()
    result = {}
    for clip in CLIPS:
        embeddings = []
        for jpeg in captures[clip][:24]:
            observation = engine.encode(decode_image(jpeg, limits), DetectionSettings(max_side=400), QualitySettings())
            embeddings.append(observation.embedding if observation.status is FaceStatus.OK else None)
        maxima = []
        for start in range(0, len(embeddings) - REQUEST_FRAMES + 1, 4):
            window = [e for e in embeddings[start : start + REQUEST_FRAMES] if e is not None]
            pairs = [float(np.linalg.norm(a - b)) for a, b in itertools.combinations(window, 2)]
            if pairs:
                maxima.append(max(pairs))
        result[clip] = {
            "windows": len(maxima),
            "max_intra_distance_max": round(max(maxima), 4) if maxima else None,
            "max_intra_distance_median": round(float(np.median(maxima)), 4) if maxima else None,
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=12, help="requests per client per scenario")
    parser.add_argument("--quick", action="store_true", help="3 repeats (a smoke run)")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    captures = load_captures()
    machine = report.machine_details(contention_note=CONTENTION)
    stages, stage_rows = stage_breakdown(captures, max(1, repeats // 4))
    intra = intra_capture_distances(captures)
    rpc, rpc_rows = rpc_benchmarks(captures, repeats)
    data = {
        "machine": machine,
        "frames": {clip: bench_frames.describe(bench_frames.load_clip(clip)) for clip in CLIPS[:1]},
        "clips": list(CLIPS),
        "configs": CONFIGS,
        "repeats_per_client": repeats,
        "stages_ms": stages,
        "intra_capture": intra,
        "rpc": rpc,
        "load_average_at_end": report.load_average(),
    }
    body = "\n\n".join(
        [
            "## gRPC latency (server process with RECOGNITION_THREADS=4, RECOGNITION_WORKERS=1)",
            report.markdown_table(
                ["config", "call", "clients", "median ms", "p95 ms", "median ms / frame", "req/s", "frames embedded"],
                rpc_rows,
            ),
            "## Stage cost, one 640×480 frame, in process",
            report.markdown_table(["stage", "ms"], stage_rows),
            "## Largest distance between two frames of one 8-frame capture (same person)",
            report.markdown_table(
                ["clip", "windows", "max", "median"],
                [
                    (c, v["windows"], v["max_intra_distance_max"], v["max_intra_distance_median"])
                    for c, v in intra.items()
                ],
            ),
            f"Load average at end: {data['load_average_at_end']}",
        ]
    )
    json_path, md_path = report.write_result("recognition", "Recognition service latency", data, body)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
