"""Metrics helpers: multiprocess preparation, process metrics of several processes, the server interceptor."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from faceauth_common import grpc_server
from faceauth_common.metrics import ProcessesCollector


def _python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


def test_prepare_multiprocess_uses_and_empties_the_given_folder(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "RECOGNITION_WORKERS": "1"}
    out = _python(
        """
        from faceauth_common.metrics import prepare_multiprocess_from_env
        prepare_multiprocess_from_env("RECOGNITION")
        from prometheus_client import values
        print(values.ValueClass.__name__)
        """,
        env,
    )
    assert out == "MmapedValue"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_one_process_without_a_folder_stays_single_process() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    out = _python(
        """
        import os
        from faceauth_common.metrics import prepare_multiprocess
        prepare_multiprocess(1)
        from prometheus_client import values
        print(values.ValueClass.__name__, os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        """,
        env,
    )
    assert out == "MutexValue None"


def test_prepare_refuses_once_prometheus_client_is_imported() -> None:
    from faceauth_common.metrics import prepare_multiprocess

    with pytest.raises(RuntimeError):
        prepare_multiprocess(2)


def test_process_metrics_of_several_processes_carry_their_pid() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # Read the child once it runs Python: between fork and exec /proc can briefly show no resident memory.
        deadline = time.monotonic() + 10
        while b"time.sleep" not in Path(f"/proc/{child.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        families = {f.name: f for f in ProcessesCollector(lambda: [os.getpid(), child.pid, os.getpid()]).collect()}
        resident = families["process_resident_memory_bytes"].samples
        assert {s.labels["pid"] for s in resident} == {str(os.getpid()), str(child.pid)}
        assert all(s.value > 0 for s in resident)
        cpu = families["process_cpu_seconds"]  # counters are named without _total in the family
        assert len(cpu.samples) == 2
    finally:
        child.kill()
        child.wait()


def test_an_rpc_that_raises_counts_as_unknown() -> None:
    def boom(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise ValueError("bug")

    def fine(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "test.Metrics",
        {"Boom": grpc.unary_unary_rpc_method_handler(boom), "Fine": grpc.unary_unary_rpc_method_handler(fine)},
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), interceptors=[grpc_server._RequestContextInterceptor()]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def count(method: str, code: str) -> float:
        labels = {"method": f"/test.Metrics/{method}", "code": code}
        return REGISTRY.get_sample_value("faceauth_grpc_server_requests_total", labels) or 0.0

    before = count("Boom", "UNKNOWN"), count("Fine", "OK")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as raised:
                channel.unary_unary("/test.Metrics/Boom")(b"x", timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNKNOWN
            assert channel.unary_unary("/test.Metrics/Fine")(b"x", timeout=10) == b"x"
    finally:
        server.stop(0)
    assert (count("Boom", "UNKNOWN"), count("Fine", "OK")) == (before[0] + 1, before[1] + 1)
