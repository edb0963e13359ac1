"""Each gRPC service starts as a real process, reports SERVING once its model is warm, and exits
cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import GrpcTls, free_port, recognition_process, wait_for_serving

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


@pytest.mark.parametrize("workers", [1, 2])
def test_a_burst_of_stop_signals_still_stops_the_service(workers: int, grpc_tls: GrpcTls) -> None:
    """Signals that arrive while the last one is still being handled (an orchestrator's SIGTERM and an operator's
    Ctrl-C, or a supervisor and a terminal both forwarding): the service still stops, cleanly. A handler that set a
    threading.Event deadlocked when a second signal came in during the first one's ``Event.set``."""
    address = f"127.0.0.1:{free_port()}"
    with recognition_process(grpc_tls, address, workers) as process:
        wait_for_serving(address, SERVICES["recognition_service"][1], process, security=grpc_tls.client)
        # Every process of the service (the supervisor and its workers share the new session's process group).
        for index in range(400):
            os.killpg(process.pid, signal.SIGINT if index % 2 else signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert sum('"event": "stopped"' in line for line in output.splitlines()) == workers, output
