"""Each worker of a multi-worker service on its own port (``RECOGNITION_WORKER_PORTS_FROM``): a client given the
list of those ports spreads its calls evenly over the workers, which the shared SO_REUSEPORT port leaves to the
kernel's connection hash; a replaced worker takes its predecessor's port; a port in use is refused at start.

The real ``python -m recognition_service`` runs with 2 workers; each logs every call with its pid and the caller's
request id, so the calls of a measured phase are counted per worker from the service's own log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.processes import service_pids
from conftest import GrpcTls, free_port, stop_process, wait_for_serving
from faceauth_common.grpc_client import open_channel
from faceauth_common.logs import request_id_var

SERVICE = "faceauth.recognition.v1.RecognitionService"
WORKERS = 2
CALLS = 200
THREADS = 4
TOLERANCE = 0.20  # each worker within ±20 % of an even share


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(100):
        first = free_port()
        if first + count - 1 <= 65535 and all(_free(first + offset) for offset in range(count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports found")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Service:
    def __init__(self, grpc_tls: GrpcTls, log_path: Path, listen: str, worker_ports_from: int) -> None:
        self.log_path = log_path
        self.listen = listen
        self.worker_addresses = [f"127.0.0.1:{worker_ports_from + index}" for index in range(WORKERS)]
        self.log_file = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "recognition_service"],
            env={
                **os.environ,
                **grpc_tls.env,
                "RECOGNITION_LISTEN": listen,
                "RECOGNITION_WORKERS": str(WORKERS),
                "RECOGNITION_WORKER_PORTS_FROM": str(worker_ports_from),
                "RECOGNITION_METRICS_LISTEN": "off",
            },
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def lines(self) -> list[dict]:
        text = self.log_path.read_text(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def worker_pid_by_address(self) -> dict[str, int]:
        """The latest pid that logged listening on each worker's own address."""
        return {
            line["worker_listen"]: line["pid"]
            for line in self.lines()
            if line.get("event") == "listening" and "worker_listen" in line
        }

    def calls_per_pid(self, request_id: str) -> Counter[int]:
        return Counter(
            line["pid"] for line in self.lines() if line.get("event") == "rpc" and line.get("request_id") == request_id
        )


@pytest.fixture
def service(grpc_tls: GrpcTls, tmp_path: Path) -> Iterator[Service]:
    started = Service(grpc_tls, tmp_path / "recognition.log", f"127.0.0.1:{free_port()}", free_port_run(WORKERS))
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.wait()
    started.log_file.close()


def call_from_threads(pool, calls: int, request_id: str) -> None:  # type: ignore[no-untyped-def]
    failures: list[BaseException] = []

    def one_thread(count: int) -> None:
        token = request_id_var.set(request_id)
        try:
            for _ in range(count):
                stub = health_pb2_grpc.HealthStub(pool)  # a stub per call rotates the pool's connections
                answer = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30, wait_for_ready=True)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            request_id_var.reset(token)

    threads = [threading.Thread(target=one_thread, args=(calls // THREADS,)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def assert_even(counts: Counter[int], pids: set[int], total: int) -> None:
    assert set(counts) == pids, f"calls reached {dict(counts)}, the workers are {sorted(pids)}"
    assert sum(counts.values()) == total, counts
    share = total / len(pids)
    assert all(abs(count - share) <= TOLERANCE * share for count in counts.values()), (
        f"calls per worker {dict(counts)}: not within ±{TOLERANCE:.0%} of {share:.0f}"
    )


def wait_for_worker(service: Service, address: str, not_pid: int | None, grpc_tls: GrpcTls) -> int:
    """The pid of the worker on ``address`` (another than ``not_pid``), once it answers SERVING there."""
    deadline = time.monotonic() + 180
    while (pid := service.worker_pid_by_address().get(address)) in (None, not_pid):
        assert service.process.poll() is None, f"the service exited ({service.process.returncode})"
        assert time.monotonic() < deadline, f"no worker listened on {address}:\n{service.log_path.read_text()[-3000:]}"
        time.sleep(0.2)
    wait_for_serving(address, SERVICE, service.process, timeout=180, security=grpc_tls.client)
    return pid


def test_a_list_of_the_worker_ports_spreads_calls_evenly_and_a_replacement_keeps_its_port(
    service: Service, grpc_tls: GrpcTls
) -> None:
    wait_for_serving(service.listen, SERVICE, service.process, timeout=180, security=grpc_tls.client)
    workers = {address: wait_for_worker(service, address, None, grpc_tls) for address in service.worker_addresses}
    assert len(set(workers.values())) == WORKERS, workers
    assert service.process.pid not in workers.values(), "the workers are forked children, not the supervisor"

    # bench/processes.py finds the whole service (supervisor and workers) from the shared port and from each
    # worker's own one alike.
    shared_port = int(service.listen.rsplit(":", 1)[1])
    everything = service_pids(shared_port)
    assert everything >= {service.process.pid, *workers.values()}, everything
    for address in service.worker_addresses:
        assert service_pids(int(address.rsplit(":", 1)[1])) == everything

    with open_channel(",".join(service.worker_addresses), grpc_tls.client) as pool:
        call_from_threads(pool, 40, "warm-up")  # until every connection is up
        call_from_threads(pool, CALLS, "measured")
        assert_even(service.calls_per_pid("measured"), set(workers.values()), CALLS)

        # Worker 0 dies (as the OOM killer would kill it); its replacement listens on worker 0's port again.
        first = service.worker_addresses[0]
        os.kill(workers[first], signal.SIGKILL)
        replacement = wait_for_worker(service, first, workers[first], grpc_tls)
        now_serving = {replacement, workers[service.worker_addresses[1]]}
        # The pool's connections to the dead port come back after gRPC's reconnect backoff (1 s, growing 1.6x
        # while the replacement loaded its model); until then round_robin skips them.
        reconnecting = time.monotonic()
        for attempt in range(1000):
            call_from_threads(pool, 40, f"reconnect-{attempt}")
            counts = service.calls_per_pid(f"reconnect-{attempt}")
            if set(counts) == now_serving and min(counts.values()) >= 16:
                break
            waited = time.monotonic() - reconnecting
            assert waited < 150, f"the replacement {replacement} gets no fair share after {waited:.0f}s: {dict(counts)}"
            time.sleep(0.5)
        print(f"calls reached the replacement evenly {time.monotonic() - reconnecting:.1f}s after it served")
        call_from_threads(pool, CALLS, "after-restart")
        assert_even(service.calls_per_pid("after-restart"), now_serving, CALLS)

    assert stop_process(service.process, timeout=60) == 0, service.log_path.read_text()[-3000:]
    events = [line.get("event") for line in service.lines()]
    assert events.count("worker_restarted") == 1
    assert events.count("stopped") == WORKERS  # the replacement and worker 1 drained; the killed one could not


def test_a_worker_port_in_use_is_refused_before_any_worker_starts(grpc_tls: GrpcTls, tmp_path: Path) -> None:
    first = free_port_run(WORKERS)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # would share a SO_REUSEPORT bind
        squatter.bind(("127.0.0.1", first + 1))
        squatter.listen()
        service = Service(grpc_tls, tmp_path / "recognition.log", f"127.0.0.1:{free_port()}", first)
        try:
            assert service.process.wait(timeout=120) == 1
        finally:
            if service.process.poll() is None:
                service.process.kill()
            service.log_file.close()
    busy = [line for line in service.lines() if line.get("event") == "worker_port_busy"]
    assert busy and busy[0]["addresses"] == [f"127.0.0.1:{first + 1}"], service.log_path.read_text()[-2000:]
    assert not [line for line in service.lines() if line.get("event") == "listening"]
