"""The real recognition server as a subprocess, once per test module."""

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
from faceauth.recognition.v1 import recognition_pb2_grpc


@pytest.fixture(scope="module")
def server_address():
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "recognition_service"],
        env={**os.environ, "RECOGNITION_LISTEN": address, "RECOGNITION_THREADS": "4", "LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "recognition service not SERVING after 120 s"
                try:
                    request = health_pb2.HealthCheckRequest(service="faceauth.recognition.v1.RecognitionService")
                    if health.Check(request, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        yield address
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                output, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
        else:
            output, _ = process.communicate()
        # Nothing sensitive may reach the logs.
        assert "embedding" not in output


@pytest.fixture(scope="module")
def stub(server_address):
    with grpc.insecure_channel(server_address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as channel:
        yield recognition_pb2_grpc.RecognitionServiceStub(channel)
