"""Each gRPC service starts as a real process, reports SERVING once its model is warm, and exits
cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import GrpcTls, free_port, wait_for_serving

SERVICES = {
    "recognition_service": ("RECOGNITION_LISTEN", "faceauth.recognition.v1.RecognitionService"),
    "liveness_service": ("LIVENESS_LISTEN", "faceauth.liveness.v1.LivenessService"),
}


@pytest.mark.parametrize("package", sorted(SERVICES))
def test_service_serves_health_and_stops_cleanly_on_sigterm(package: str, grpc_tls: GrpcTls) -> None:
    listen_variable, service_name = SERVICES[package]
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", package],
        env={**os.environ, **grpc_tls.env, listen_variable: address, "LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = wait_for_serving(address, service_name, process, security=grpc_tls.client)
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
