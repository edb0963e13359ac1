"""Prometheus metrics that add up across worker processes.

A service with several worker processes (gRPC workers, gunicorn workers) runs prometheus-client in
multiprocess mode: every process writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` and the
metrics endpoint merges them. prometheus-client chooses its storage when it is first imported, so
``prepare_multiprocess`` must run before anything imports ``prometheus_client`` (first lines of each
``__main__``); this module imports it lazily for that reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from faceauth_common.settings import env_int, env_str

log = logging.getLogger(__name__)

T = TypeVar("T")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(workers: int) -> None:
    """Switch prometheus-client to multiprocess mode when this program will run several processes.

    Uses ``PROMETHEUS_MULTIPROC_DIR`` when set (its stale files from an earlier run are removed),
    otherwise creates a private temporary directory.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prepare_multiprocess must run before prometheus_client is imported")
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
    elif workers > 1:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="faceauth-metrics-")


def prepare_multiprocess_from_env(prefix: str) -> None:
    """``prepare_multiprocess`` with the worker count from ``{prefix}_WORKERS``."""
    prepare_multiprocess(env_int(f"{prefix}_WORKERS", 1, minimum=1))


def metrics_listen_from_env(prefix: str, default: str) -> str:
    """``{prefix}_METRICS_LISTEN`` (host:port); empty or ``off`` disables the endpoint."""
    value = env_str(f"{prefix}_METRICS_LISTEN", default)
    return "" if value.lower() == "off" else value


def start_metrics_server(listen: str, process_ids: Callable[[], Iterable[int]] | None = None) -> None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread (merged across processes if needed).

    In multiprocess mode prometheus-client's own process collector cannot see the other processes, so
    the standard ``process_*`` series are reported for this process and every id ``process_ids``
    returns (the worker processes), each with a ``pid`` label.
    """
    if not listen:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client import multiprocess as prom_multiprocess

    host, _, port = listen.rpartition(":")
    registry: Any = None
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
        own = os.getpid()
        registry.register(ProcessesCollector(lambda: [own, *(process_ids() if process_ids else [])]))
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104
    if registry is None:
        start_http_server(int(port), addr=host)
    else:
        start_http_server(int(port), addr=host, registry=registry)
    log.info("metrics_listening", extra={"fields": {"listen": listen, "multiprocess": registry is not None}})


class ProcessesCollector:
    """The standard ``process_*`` series (CPU, memory, open files, start time) of several processes.

    Wraps prometheus-client's ``ProcessCollector`` per process id and adds a ``pid`` label, so one
    endpoint can report a supervisor and its workers (multiprocess mode).
    """

    def __init__(self, process_ids: Callable[[], Iterable[int]]) -> None:
        self._process_ids = process_ids

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import Metric
        from prometheus_client.process_collector import ProcessCollector

        merged: dict[str, Any] = {}
        for pid in sorted(set(self._process_ids())):
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():
                target = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    target.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (multiprocess mode only)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess as prom_multiprocess

        prom_multiprocess.mark_process_dead(pid)


def cleanup_multiprocess_dir() -> None:
    path = os.environ.get(MULTIPROC_ENV, "")
    if path.startswith(tempfile.gettempdir()) and "faceauth-metrics-" in path:
        shutil.rmtree(path, ignore_errors=True)


class _Metrics:
    """The metric objects, created on first use (after ``prepare_multiprocess``)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        latency_buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
        self.grpc_requests = Counter(
            "faceauth_grpc_server_requests_total", "gRPC calls served, by method and status code", ["method", "code"]
        )
        self.grpc_latency = Histogram(
            "faceauth_grpc_server_request_seconds", "gRPC call latency", ["method"], buckets=latency_buckets
        )
        self.inference = Histogram(
            "faceauth_inference_seconds",
            "Time spent per model stage (detection, landmarks, embedding, cnn, ...) per call",
            ["stage"],
            buckets=latency_buckets,
        )
        self.frames = Histogram(
            "faceauth_frames_per_request",
            "Frames (images) per request",
            ["method"],
            buckets=(1, 2, 4, 6, 8, 10, 12, 16, 24, 32),
        )
        self.worker_restarts = Counter(
            "faceauth_worker_restarts_total", "Server worker processes that died and were replaced by the supervisor"
        )


def created_once(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter that calls ``factory`` on first use only, even when the first calls race.

    Metric objects are made this way: after ``prepare_multiprocess``, and registered exactly once.
    """
    lock = threading.Lock()
    made: list[T] = []

    def get() -> T:
        if not made:
            with lock:
                if not made:
                    made.append(factory())
        return made[0]

    return get


metrics = created_once(_Metrics)


@contextlib.contextmanager
def observe_stage(stage: str) -> Iterator[None]:
    """Time a model stage into ``faceauth_inference_seconds{stage=...}``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics().inference.labels(stage=stage).observe(time.perf_counter() - started)
