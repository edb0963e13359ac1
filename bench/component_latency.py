"""Component latency: recognition Encode/Verify and liveness Check for 1, 8 and 15 frames over gRPC.

Against services that are already running (``bench/run_all.sh`` starts them). For every (method, frame
count): warm-up calls, then ``--repeats`` sequential calls on one reused channel; median / p95 / max of
the client-side call time, and the service's CPU seconds per call (from /proc, all its worker processes).
``Verify ∥ Check`` is the pair auth-web makes for one login, issued in parallel as auth-web does.

    .venv/bin/python -m bench.component_latency [--repeats 20] [--sizes 1,8,15]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bench import processes, report
from bench.frames import DEFAULT_CLIP, Frame, describe
from bench.scenario import CHALLENGE_ACTION, Stubs, build_scenario, classify_windows, enroll_templates
from faceauth.liveness.v1 import liveness_pb2
from faceauth.recognition.v1 import recognition_pb2

SERVICE_PORTS = {"liveness": 50051, "recognition": 50052}


def _port(target: str) -> int:
    return int(target.rsplit(":", 1)[1])


def pick_capture(stubs: Stubs, scenario, templates, size: int, actions: list[str]) -> tuple[list[Frame], str]:  # type: ignore[no-untyped-def]
    """A ``size``-frame capture starting where an 8-frame login window is accepted (falls back to the first)."""
    pool = scenario.login_pool
    if size < 8:
        return pool[:size], "first frames"
    verdicts = classify_windows(stubs, scenario.login_windows(8, stride=6), templates, actions)
    for verdict in verdicts:
        if verdict.accepted:
            start = next(index for index, frame in enumerate(pool) if frame.time_ms == verdict.start_ms)
            start = min(start, len(pool) - size)
            return pool[start : start + size], f"window at {verdict.start_ms} ms (accepted as an 8-frame login)"
    return pool[:size], "first frames (no 8-frame window was accepted)"


def measure(call: Callable[[], object], warmup: int, repeats: int, pids: dict[str, set[int]]) -> dict[str, object]:
    for _ in range(warmup):
        call()
    durations = []
    before = processes.cpu_snapshot(pids)
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    cpu = processes.cpu_delta(before, processes.cpu_snapshot(pids))
    return {
        "latency": report.summarise_ms(durations),
        "cpu_seconds_per_call": {name: round(value / repeats, 4) for name, value in cpu.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--liveness", default="127.0.0.1:50051")
    parser.add_argument("--recognition", default="127.0.0.1:50052")
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--sizes", default="1,8,15", help="frame counts, comma-separated")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--note", default="", help="a note stored with the results (e.g. other load on the machine)")
    parser.add_argument("--name", default="component_latency", help="result file name under bench/results/")
    args = parser.parse_args(argv)

    sizes = [int(value) for value in args.sizes.split(",")]
    machine = report.machine_details(contention_note=args.note)
    scenario = build_scenario(args.clip)
    stubs = Stubs(args.liveness, args.recognition)
    stubs.wait_ready()
    pids = processes.discover({"liveness": _port(args.liveness), "recognition": _port(args.recognition)})
    templates = enroll_templates(stubs, scenario)
    actions = [CHALLENGE_ACTION]
    pool = ThreadPoolExecutor(max_workers=2)

    def parallel_pair(capture: list[Frame]) -> Callable[[], object]:
        def call() -> object:
            check = pool.submit(stubs.check, capture, actions)
            verify = pool.submit(stubs.verify, capture, templates)
            return check.result(), verify.result()

        return call

    rows = []
    results = []
    for size in sizes:
        capture, where = pick_capture(stubs, scenario, templates, size, actions)
        check = stubs.check(capture, actions)
        verify = stubs.verify(capture, templates)
        encode = stubs.encode(capture)
        outcomes = {
            "Encode": f"{sum(face.status == recognition_pb2.FACE_STATUS_OK for face in encode.faces)}/{size} faces OK",
            "Verify": recognition_pb2.VerifyReason.Name(verify.reason).removeprefix("VERIFY_REASON_"),
            "Check": liveness_pb2.LivenessReason.Name(check.reason).removeprefix("LIVENESS_REASON_"),
        }
        outcomes["Verify ∥ Check"] = f"{outcomes['Verify']} + {outcomes['Check']}"
        calls: dict[str, Callable[[], object]] = {
            "Encode": lambda capture=capture: stubs.encode(capture),
            "Verify": lambda capture=capture: stubs.verify(capture, templates),
            "Check": lambda capture=capture: stubs.check(capture, actions),
            "Verify ∥ Check": parallel_pair(capture),
        }
        for method, call in calls.items():
            measured = measure(call, args.warmup, args.repeats, pids)
            latency = measured["latency"]
            cpu = measured["cpu_seconds_per_call"]
            results.append(
                {"method": method, "frames": size, "capture": where, "outcome": outcomes[method], **measured}
            )
            rows.append(
                [
                    method,
                    size,
                    latency["n"],  # type: ignore[index]
                    latency["median_ms"],  # type: ignore[index]
                    latency["p95_ms"],  # type: ignore[index]
                    latency["max_ms"],  # type: ignore[index]
                    round(sum(cpu.values()), 3),  # type: ignore[union-attr]
                    outcomes[method],
                ]
            )
            print(f"{method:15s} {size:2d} frames  {latency}  cpu/call={cpu}", flush=True)
    pool.shutdown()
    stubs.close()

    data = {
        "benchmark": "component_latency",
        "machine": machine,
        "clip": args.clip,
        "frames": describe(scenario.frames),
        "templates": len(templates),
        "challenge": actions,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "service_pids": {name: sorted(values) for name, values in pids.items()},
        "results": results,
    }
    table = report.markdown_table(
        ["call", "frames", "n", "median ms", "p95 ms", "max ms", "service CPU-s/call", "outcome"], rows
    )
    body = (
        f"Clip `{args.clip}` → 640×480 JPEG q85 at 6 fps; {len(templates)} templates from the enrollment frames; "
        f"challenge {actions}; {args.warmup} warm-up + {args.repeats} measured calls each, sequential, one channel "
        "per service. Latency is client-side (includes gRPC transfer of the JPEGs); CPU is the service's own "
        "(all worker processes, from /proc).\n\n" + table
    )
    json_path, md_path = report.write_result(args.name, "Component latency (gRPC)", data, body)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
