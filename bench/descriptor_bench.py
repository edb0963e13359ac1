"""The face descriptor side by side: dlib's ``compute_face_descriptor`` vs the TFLite port on three runtimes,
then the recognition service with each descriptor, and what detection shared with liveness could save.

    .venv/bin/python -m bench.descriptor_bench [--repeats 15] [--requests 40] [--note "..."]

1. In process, on 15 real face chips (dlib's 150x150 chips of ../shared/data/video/liveportrait/d9.mp4 frames):
   wall ms and CPU ms per embedding for 1 chip, a batch of 5 and of 15, per runtime and interpreter thread
   count: ``ai-edge-litert`` (LiteRT, the pinned one), tensorflow-cpu's ``tf.lite.Interpreter`` (what
   liveness-service has), ``tflite-runtime`` when it imports (2.14.0 is built against numpy 1.x: with the
   venv's numpy 2 it does not load; the error is recorded), and dlib. Also the cost of resizing an
   interpreter's input to another batch size (Verify's waves are 2 then 1 chips).
2. The real server (``python -m recognition_service``, one worker, 4 threads, mutual TLS) with
   ``RECOGNITION_DESCRIPTOR=dlib`` and ``=tflite``: 8-frame genuine and impostor Verify calls at 1 client,
   latency p50/p95 and the server's CPU seconds per call (from /proc), frames it detected and embedded.
3. Detection: ms per frame of recognition's HOG pass (400 px, RGB) and liveness's (320 px, grey), so the
   share of a login's CPU that is detection done twice can be read off (bench/results/shared_detection.md).

Writes bench/results/descriptor_bench[_contended].json and .md. Not a test: numbers depend on the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench import frames as bench_frames
from bench import report
from bench.recognition_bench import Server, enroll
from faceauth.recognition.v1 import recognition_pb2 as pb
from recognition_service.descriptor import DEFAULT_MODEL_PATH, DlibDescriptor
from recognition_service.engine import DetectionSettings, FaceEngine, FaceStatus, model_paths
from recognition_service.quality import QualitySettings

CLIP = "liveportrait/d9.mp4"
# Another person: d18 is 0.83-0.89 from d9's templates (d12 and retalking/1 are 0.51-0.60 from them, too
# close to 0.55 to be clean impostors for a latency run; dlib and the port decide them alike either way).
IMPOSTOR_CLIP = "liveportrait/d18.mp4"
BATCHES = (1, 5, 15)
LOGIN_DETECTION = DetectionSettings(max_side=400, upsample=0)


def real_chips(count: int = 15) -> tuple[np.ndarray, list[np.ndarray]]:
    """``count`` chips of distinct d9 frames, and the decoded frames (RGB)."""
    engine = FaceEngine(descriptor="dlib")
    frames = [bench_frames.decode_rgb(frame) for frame in bench_frames.load_clip(CLIP)]
    chips = []
    for image in frames[:: max(1, len(frames) // (2 * count))]:
        observation = engine.observe(image, LOGIN_DETECTION, QualitySettings())
        if observation.status is FaceStatus.OK:
            chips.append(engine.chip(image, observation.landmarks))
        if len(chips) == count:
            break
    return np.asarray(chips, dtype=np.uint8), frames


def _interpreter_class(runtime: str):  # type: ignore[no-untyped-def]
    if runtime == "ai-edge-litert":
        from ai_edge_litert.interpreter import Interpreter
    elif runtime == "tensorflow-cpu tf.lite":
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    else:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]
    return Interpreter


def per_embedding(run, chips: np.ndarray, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median wall ms and mean CPU ms (this process, all threads) per embedding of ``run(chips)``."""
    run(chips)  # warm (allocation at this batch size)
    walls = []
    cpu_started = time.process_time()
    for _ in range(repeats):
        started = time.perf_counter()
        run(chips)
        walls.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_started) / repeats
    return {
        "wall_ms_per_embedding": round(1000 * float(np.median(walls)) / len(chips), 2),
        "cpu_ms_per_embedding": round(1000 * cpu / len(chips), 2),
    }


def runtime_table(chips: np.ndarray, repeats: int, reference: np.ndarray) -> dict[str, object]:
    results: dict[str, object] = {}
    for runtime in ("ai-edge-litert", "tensorflow-cpu tf.lite", "tflite-runtime"):
        try:
            Interpreter = _interpreter_class(runtime)
            probe = Interpreter(model_path=str(DEFAULT_MODEL_PATH), num_threads=1)
        except Exception as error:
            cause = error.__cause__ or error.__context__
            message = f"{type(error).__name__}: {str(error)[:160]}"
            if cause is not None:
                message += f" (from {type(cause).__name__}: {str(cause)[:120]})"
            results[runtime] = {"error": message}
            print(f"{runtime}: not measured ({results[runtime]['error']})", file=sys.stderr)
            continue
        del probe
        for threads in (1, 2):
            interpreter = Interpreter(model_path=str(DEFAULT_MODEL_PATH), num_threads=threads)
            input_index = interpreter.get_input_details()[0]["index"]
            output_index = interpreter.get_output_details()[0]["index"]
            current = {"batch": -1}

            def run(  # type: ignore[no-untyped-def]
                batch: np.ndarray,
                interpreter=interpreter,
                input_index=input_index,
                output_index=output_index,
                current=current,
            ):
                if batch.shape[0] != current["batch"]:
                    interpreter.resize_tensor_input(input_index, list(batch.shape))
                    interpreter.allocate_tensors()
                    current["batch"] = batch.shape[0]
                interpreter.set_tensor(input_index, np.ascontiguousarray(batch, dtype=np.float32))
                interpreter.invoke()
                return np.array(interpreter.get_tensor(output_index))

            row: dict[str, object] = {}
            for size in BATCHES:
                row[f"batch_{size}"] = per_embedding(run, chips[:size], repeats)
            row["max_abs_diff_vs_dlib"] = float(np.max(np.abs(run(chips) - reference)))
            # Verify's waves alternate batch sizes: what one resize + allocate costs.
            started = time.perf_counter()
            for size in (2, 1) * 5:
                interpreter.resize_tensor_input(input_index, [size, 150, 150, 3])
                interpreter.allocate_tensors()
            row["resize_allocate_ms"] = round(1000 * (time.perf_counter() - started) / 10, 2)
            results[f"{runtime}, {threads} thread{'s' if threads > 1 else ''}"] = row
            print(f"{runtime} x{threads}: {row}", file=sys.stderr)
    dlib_descriptor = DlibDescriptor(model_paths()["encoder"])
    results["dlib compute_face_descriptor"] = {
        f"batch_{size}": per_embedding(dlib_descriptor.compute, chips[:size], max(3, repeats // 3)) for size in BATCHES
    }
    print(f"dlib: {results['dlib compute_face_descriptor']}", file=sys.stderr)
    return results


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_table(requests: int) -> dict[str, object]:
    genuine_frames = [f.jpeg for f in bench_frames.load_clip(CLIP)]
    impostor_frames = [f.jpeg for f in bench_frames.load_clip(IMPOSTOR_CLIP)]
    results: dict[str, object] = {}
    for descriptor in ("dlib", "tflite"):
        server = Server({"RECOGNITION_DESCRIPTOR": descriptor, "RECOGNITION_WORKERS": "1", "RECOGNITION_THREADS": "4"})
        try:
            templates = enroll(server.stub, {CLIP: genuine_frames})[CLIP]
            for kind, source in (("genuine", genuine_frames), ("impostor", impostor_frames)):
                # Genuine windows stay clear of the last frames (the templates); impostor windows cover the clip.
                last = len(source) - (40 if kind == "genuine" else 8)
                windows = [source[start : start + 8] for start in range(0, last, 3)]
                latencies, detected, embedded, matches = [], [], [], 0
                server.stub.Verify(pb.VerifyRequest(frames=windows[0], templates=templates), timeout=60)
                cpu_started = _process_cpu_seconds(server.process.pid)
                for k in range(requests):
                    request = pb.VerifyRequest(frames=windows[k % len(windows)], templates=templates)
                    started = time.perf_counter()
                    response = server.stub.Verify(request, timeout=60)
                    latencies.append(time.perf_counter() - started)
                    detected.append(sum(f.face.status != pb.FACE_STATUS_UNSPECIFIED for f in response.frames))
                    embedded.append(response.compared_frames)
                    matches += int(response.match)
                cpu = (_process_cpu_seconds(server.process.pid) - cpu_started) / requests
                results[f"{descriptor}, {kind}"] = {
                    "latency": report.summarise_ms(latencies),
                    "server_cpu_s_per_verify": round(cpu, 4),
                    "frames_detected_mean": round(float(np.mean(detected)), 2),
                    "frames_embedded_mean": round(float(np.mean(embedded)), 2),
                    "matched": f"{matches}/{requests}",
                    "model_version": response.model_version,
                }
                print(f"{descriptor} {kind}: {results[f'{descriptor}, {kind}']}", file=sys.stderr)
        finally:
            server.close()
    return results


def detection_table(frames: list[np.ndarray], repeats: int) -> dict[str, object]:
    from liveness_service.faces import FaceAnalyzer

    engine = FaceEngine(descriptor="tflite")
    analyzer = FaceAnalyzer(detect_max_side=320)
    sample = frames[: max(1, min(len(frames), repeats))]
    table = {}
    for name, detect in (
        ("recognition HOG (400 px, RGB)", lambda image: engine.detect(image, LOGIN_DETECTION)),
        ("liveness HOG (320 px, grey)", analyzer.detect),
    ):
        detect(sample[0])
        cpu_started, started = time.process_time(), time.perf_counter()
        for image in sample:
            detect(image)
        table[name] = {
            "wall_ms_per_frame": round(1000 * (time.perf_counter() - started) / len(sample), 2),
            "cpu_ms_per_frame": round(1000 * (time.process_time() - cpu_started) / len(sample), 2),
        }
    observation = engine.observe(sample[0], LOGIN_DETECTION, QualitySettings())
    started = time.perf_counter()
    for _ in range(repeats):
        engine._landmarks(sample[0], observation.box)  # the 5-point pass alone
    table["recognition 5-point landmarks"] = {
        "wall_ms_per_frame": round(1000 * (time.perf_counter() - started) / repeats, 2)
    }
    started = time.perf_counter()
    for _ in range(repeats):
        engine.chip(sample[0], observation.landmarks)
    table["dlib get_face_chip"] = {"wall_ms_per_frame": round(1000 * (time.perf_counter() - started) / repeats, 2)}
    return table


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    rows = []
    for name, row in data["runtimes"].items():
        if "error" in row:
            rows.append((name, "–", "–", "–", "–", f"not measured: {row['error']}"))
            continue
        cells = [
            f"{row[f'batch_{b}']['wall_ms_per_embedding']} / {row[f'batch_{b}']['cpu_ms_per_embedding']}"
            for b in BATCHES
        ]
        extra = []
        if "max_abs_diff_vs_dlib" in row:
            extra.append(f"max abs diff vs dlib {row['max_abs_diff_vs_dlib']:.1e}")
        if "resize_allocate_ms" in row:
            extra.append(f"resize+allocate {row['resize_allocate_ms']} ms")
        rows.append((name, *cells, "; ".join(extra)))
    service_rows = [
        (
            name,
            row["latency"]["median_ms"],
            row["latency"]["p95_ms"],
            row["server_cpu_s_per_verify"],
            row["frames_detected_mean"],
            row["frames_embedded_mean"],
            row["matched"],
        )
        for name, row in data["service"].items()
    ]
    detection_rows = [
        (name, row.get("wall_ms_per_frame"), row.get("cpu_ms_per_frame")) for name, row in data["detection"].items()
    ]
    return "\n".join(
        [
            "## Per embedding, in process (15 real chips; ms wall / ms CPU of all threads, per embedding)",
            "",
            report.markdown_table(("descriptor", "1 chip", "batch of 5", "batch of 15", "notes"), rows),
            "",
            "## The recognition service, 8-frame Verify at 1 client (one worker, 4 threads)",
            "",
            report.markdown_table(
                (
                    "descriptor, capture",
                    "p50 ms",
                    "p95 ms",
                    "server CPU s / Verify",
                    "frames detected",
                    "frames embedded",
                    "matched",
                ),
                service_rows,
            ),
            "",
            "## Detection and alignment per frame (in process)",
            "",
            report.markdown_table(("stage", "wall ms / frame", "CPU ms / frame"), detection_rows),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--requests", type=int, default=40, help="Verify calls per descriptor and capture kind")
    parser.add_argument("--note", default="", help="what else ran on the machine (a note makes the result _contended)")
    args = parser.parse_args(argv)
    chips, frames = real_chips()
    reference = DlibDescriptor(model_paths()["encoder"]).compute(chips)
    data = {
        "machine": report.machine_details(contention_note=args.note),
        "chips": len(chips),
        "runtimes": runtime_table(chips, args.repeats, reference),
        "service": service_table(args.requests),
        "detection": detection_table(frames, args.repeats),
        "not_measured": {
            "onnxruntime": "would need a second conversion (tf2onnx) and one more runtime in the image; LiteRT "
            "already meets the 15 ms target with room to spare"
        },
    }
    name = "descriptor_bench" + ("_contended" if args.note else "")
    _, md_path = report.write_result(name, "Face descriptor: dlib vs the TFLite port", data, markdown(data))
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
