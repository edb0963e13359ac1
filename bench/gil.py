"""Do dlib and TensorFlow Lite release the GIL? Same call on 1 and 2 threads of one process; CPU/wall tells.

With 2 threads, CPU/wall ≈ 2 means the call runs in parallel (threads in one server process can use both cores);
≈ 1 means the calls are serialised by the GIL (only more processes — RECOGNITION_WORKERS / LIVENESS_WORKERS — help).
Calls: dlib's HOG detector on a 640×480 frame, dlib's ResNet face descriptor, the 68-point landmarks, and the
liveness service's TFLite passive model on a batch of 8 crops (interpreter with one thread, as the service builds it).

    .venv/bin/python -m bench.gil [--calls 6]
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from collections.abc import Callable

import numpy as np

from bench import report
from bench.frames import DEFAULT_CLIP, decode_rgb
from bench.scenario import build_scenario


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parallelism(job: Callable[[], object], calls: int, threads: int) -> dict[str, float]:
    # Each thread calls once before the clock starts, so per-thread objects are made outside the measurement.
    ready = threading.Barrier(threads + 1)

    def work() -> None:
        job()
        ready.wait()
        for _ in range(calls):
            job()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    wall_started, cpu_started = time.perf_counter(), _cpu()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - wall_started
    used = _cpu() - cpu_started
    return {"threads": threads, "calls": calls * threads, "wall_s": round(wall, 3), "cpu_s": round(used, 3),
            "cpu_per_wall": round(used / wall, 2)}  # fmt: skip


def jobs(frame_rgb: np.ndarray) -> dict[str, Callable[[], object]]:
    import dlib
    import face_recognition_models

    from faceauth_common.threadsafe import InstancePool

    detectors = InstancePool.of_copies(dlib.get_frontal_face_detector(), 2)
    detector = dlib.get_frontal_face_detector()
    detector_lock = threading.Lock()

    def pooled_detect() -> object:
        with detectors.borrow() as pooled:
            return pooled(frame_rgb, 0)

    def locked_detect() -> object:
        with detector_lock:
            return detector(frame_rgb, 0)

    five = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    sixty_eight = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    encoder = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    box = max(detector(frame_rgb, 0), key=lambda rect: rect.area())
    shape = five(frame_rgb, box)
    found: dict[str, Callable[[], object]] = {
        # A detector must not run on two threads at once: one per thread (as the engines do) or one behind a lock.
        "dlib HOG detector (640×480, no upsampling), one per thread": pooled_detect,
        "dlib HOG detector (640×480, no upsampling), one behind a lock": locked_detect,
        "dlib 68-point landmarks": lambda: sixty_eight(frame_rgb, box),
        "dlib ResNet face descriptor": lambda: encoder.compute_face_descriptor(frame_rgb, shape, 1),
    }
    try:
        from liveness_service.config import Settings
        from liveness_service.passive import ModelSpec, TFLiteScorer

        model_path = Settings.from_env().passive_model.members[0]  # MiniFASNetV2; V1SE is the same size
        size = ModelSpec.for_model(model_path).input_size
        crops = np.zeros((8, size, size, 3), dtype=np.float32)
        scorer = TFLiteScorer(model_path, num_threads=1, instances=2)  # one interpreter per thread
        shared = TFLiteScorer(model_path, num_threads=1)
        shared_lock = threading.Lock()

        def score() -> object:
            return scorer.score(crops)

        def locked_score() -> object:
            with shared_lock:
                return shared.score(crops)

        found["TFLite passive model, batch of 8 crops, one interpreter behind a lock"] = locked_score
        found["TFLite passive model, batch of 8 crops, one interpreter per thread"] = score
    except Exception as error:  # the liveness package's layout is its owner's; report what could not be loaded
        print(f"TFLite model not measured: {type(error).__name__}: {error}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--calls", type=int, default=6, help="calls per thread")
    parser.add_argument("--note", default="")
    parser.add_argument("--name", default="gil")
    args = parser.parse_args(argv)

    machine = report.machine_details(contention_note=args.note)
    frame = decode_rgb(build_scenario(args.clip).login_pool[0])
    results = []
    for name, job in jobs(frame).items():
        job()  # warm-up
        one, two = parallelism(job, args.calls, 1), parallelism(job, args.calls, 2)
        results.append({"call": name, "one_thread": one, "two_threads": two,
                        "releases_gil": two["cpu_per_wall"] >= 1.5})  # fmt: skip
        print(results[-1], flush=True)
    rows = [
        [r["call"], round(r["one_thread"]["cpu_s"] / r["one_thread"]["calls"] * 1000, 1),
         r["two_threads"]["cpu_per_wall"], round(r["two_threads"]["calls"] / r["two_threads"]["wall_s"], 1),
         "yes" if r["releases_gil"] else "**no**"]
        for r in results
    ]  # fmt: skip
    body = (
        f"Each call {args.calls}× on one thread, then {args.calls}× on each of two threads of one process. "
        "CPU/wall with two threads ≈ 2: the call releases the GIL; ≈ 1: it holds it (or a lock serialises it). "
        "No dlib object or TFLite interpreter may run on two threads at once (a shared HOG detector segfaults), so "
        "each is either made once per thread or used behind a lock; calls/s on two threads says which is faster.\n\n"
        + report.markdown_table(
            ["call", "CPU ms/call", "CPU/wall, 2 threads", "calls/s, 2 threads", "runs in parallel"], rows
        )
    )
    data = {"benchmark": "gil", "machine": machine, "results": results}
    json_path, md_path = report.write_result(args.name, "Which calls release the GIL", data, body)
    print(body)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
