"""How evenly auth-web's calls split over a model service's worker processes: the shared SO_REUSEPORT port
against the list of the workers' own ports (``RECOGNITION_WORKER_PORTS_FROM``).

    .venv/bin/python -m bench.worker_balance [--calls 200] [--threads 4] [--trials 3]

Starts the real ``python -m recognition_service`` with 2 workers, each also on its own port, and sends
``--calls`` Verify calls (3 frames of tests/data against one template) from ``--threads`` threads through
auth-web's channel pool (``open_channel``: round_robin, 4 connections per address), ``--trials`` times per
target with a fresh pool each time (the kernel hashes each new connection to a worker anew):

- ``shared``: the target is the shared port, as before (the kernel decides which worker gets each connection);
- ``list``: the target is ``127.0.0.1:p0,127.0.0.1:p1``, what the local run now gives auth-web.

Per worker: calls (counted from the workers' own ``rpc`` log lines, by the pid and request id of each trial) and
CPU seconds (utime + stime from /proc). Writes bench/results/worker_balance.json and .md. Not a test: the CPU
numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.processes import free_port, read_process
from faceauth.recognition.v1 import recognition_pb2 as pb
from faceauth.recognition.v1 import recognition_pb2_grpc
from faceauth_common.grpc_client import open_channel, secure_channel
from faceauth_common.logs import request_id_var
from faceauth_common.tls import GrpcTls

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
EXAMPLES = REPO / "tests" / "data" / "faces" / "face_recognition_examples" / "examples"
SERVICE = "faceauth.recognition.v1.RecognitionService"
WORKERS = 2


def consecutive_free_ports(count: int) -> int:
    for _ in range(100):
        first = free_port()
        free = True
        for port in range(first, first + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    free = False
        if free:
            return first
    raise RuntimeError("no consecutive free ports")


def wait_serving(address: str, tls: GrpcTls, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    with secure_channel(address, tls.client) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with status {process.returncode}")
            try:
                request = health_pb2.HealthCheckRequest(service=SERVICE)
                if stub.Check(request, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"{address} not SERVING after {timeout}s")


def log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(errors="replace").splitlines() if line.startswith("{")]


def run_trial(target: str, tls: GrpcTls, request: pb.VerifyRequest, calls: int, threads: int, tag: str) -> float:
    """``calls`` Verify calls from ``threads`` threads through a fresh pool; returns the wall time."""
    failures: list[BaseException] = []
    with open_channel(target, tls.client) as pool:

        def worker(count: int, warm_up: bool) -> None:
            token = request_id_var.set(f"{tag}-warm-up" if warm_up else tag)
            try:
                for _ in range(count):
                    recognition_pb2_grpc.RecognitionServiceStub(pool).Verify(request, timeout=120, wait_for_ready=True)
            except BaseException as error:
                failures.append(error)
            finally:
                request_id_var.reset(token)

        def batch(total: int, warm_up: bool) -> None:
            pool_threads = [threading.Thread(target=worker, args=(total // threads, warm_up)) for _ in range(threads)]
            for thread in pool_threads:
                thread.start()
            for thread in pool_threads:
                thread.join()

        batch(threads * 4, warm_up=True)  # the pool's connections come up
        started = time.perf_counter()
        batch(calls, warm_up=False)
        wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} calls failed: {failures[0]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()

    tls = GrpcTls(Path(tempfile.mkdtemp(prefix="bench-grpc-tls-")))
    shared = f"127.0.0.1:{free_port()}"
    first = consecutive_free_ports(WORKERS)
    worker_addresses = [f"127.0.0.1:{first + index}" for index in range(WORKERS)]
    log_path = Path(tempfile.mkdtemp(prefix="bench-worker-balance-")) / "recognition.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "recognition_service"],
            env={
                **os.environ,
                **tls.env,
                "RECOGNITION_LISTEN": shared,
                "RECOGNITION_WORKERS": str(WORKERS),
                "RECOGNITION_WORKER_PORTS_FROM": str(first),
                "RECOGNITION_METRICS_LISTEN": "off",
            },
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            for address in [shared, *worker_addresses]:
                wait_serving(address, tls, process)
            pids = sorted(
                {r["pid"] for r in log_records(log_path) if r.get("event") == "listening" and "worker_listen" in r}
            )
            with secure_channel(shared, tls.client) as channel:
                stub = recognition_pb2_grpc.RecognitionServiceStub(channel)
                enrolled = stub.Encode(pb.EncodeRequest(images=[(EXAMPLES / "obama.jpg").read_bytes()]), timeout=120)
            templates = [
                pb.Template(embedding=face.embedding) for face in enrolled.faces if face.status == pb.FACE_STATUS_OK
            ]
            frames = [(EXAMPLES / name).read_bytes() for name in ("obama2.jpg", "obama-240p.jpg", "obama.jpg")]
            request = pb.VerifyRequest(frames=frames, templates=templates)

            trials = []
            for kind, target in (("shared", shared), ("list", ",".join(worker_addresses))):
                for trial in range(args.trials):
                    tag = f"{kind}-{trial}"
                    before = {pid: read_process(pid).cpu_seconds for pid in pids}  # type: ignore[union-attr]
                    wall = run_trial(target, tls, request, args.calls, args.threads, tag)
                    after = {pid: read_process(pid).cpu_seconds for pid in pids}  # type: ignore[union-attr]
                    time.sleep(0.5)  # the last log lines reach the file
                    counted = Counter(
                        r["pid"]
                        for r in log_records(log_path)
                        if r.get("event") == "rpc" and r.get("request_id") == tag and "Verify" in r.get("method", "")
                    )
                    trials.append(
                        {
                            "target": kind,
                            "trial": trial,
                            "calls_per_worker": [counted.get(pid, 0) for pid in pids],
                            "cpu_seconds_per_worker": [round(after[pid] - before[pid], 2) for pid in pids],
                            "wall_seconds": round(wall, 1),
                        }
                    )
                    print(json.dumps(trials[-1]), flush=True)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)

    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"workers": WORKERS, "calls": args.calls, "threads": args.threads, "trials": trials}
    (RESULTS / "worker_balance.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Calls and CPU per recognition worker ({WORKERS} workers, {args.calls} Verify calls from "
        f"{args.threads} threads per trial, a fresh pool of 4 connections per address each trial)",
        "",
        "| target | trial | calls per worker | CPU s per worker | wall s |",
        "|---|---|---|---|---|",
    ]
    for entry in trials:
        calls = " : ".join(str(c) for c in entry["calls_per_worker"])
        cpu = " : ".join(f"{c:.1f}" for c in entry["cpu_seconds_per_worker"])
        lines.append(f"| {entry['target']} | {entry['trial']} | {calls} | {cpu} | {entry['wall_seconds']} |")
    (RESULTS / "worker_balance.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
