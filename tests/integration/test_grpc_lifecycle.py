"""Each gRPC service starts as a real process, reports SERVING once its model is warm, and exits
cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import free_port

SERVICES = {
    "recognition_service": ("RECOGNITION_LISTEN", "faceauth.recognition.v1.RecognitionService"),
    "liveness_service": ("LIVENESS_LISTEN", "faceauth.liveness.v1.LivenessService"),
}


def wait_for_serving(address: str, service_name: str, process: subprocess.Popen, timeout: float = 120) -> list[str]:
    """Poll grpc.health.v1 until SERVING; returns the statuses seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, f"service exited early with status {process.returncode}"
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=service_name), timeout=1).status
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
                if not seen or seen[-1] != name:
                    seen.append(name)
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return seen
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"{service_name} not SERVING after {timeout}s (saw {seen})")


@pytest.mark.parametrize("package", sorted(SERVICES))
def test_service_serves_health_and_stops_cleanly_on_sigterm(package: str) -> None:
    listen_variable, service_name = SERVICES[package]
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", package],
        env={**os.environ, listen_variable: address, "LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = wait_for_serving(address, service_name, process)
        assert seen[-1] == "SERVING"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    events = [line for line in output.splitlines() if line.startswith("{")]
    assert any('"event": "serving"' in line for line in events), output
    assert any('"event": "stopped"' in line for line in events), output
