"""The real recognition server as a subprocess, once per test module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import grpc
import pytest

from conftest import GrpcTls, free_port, wait_for_serving
from faceauth.recognition.v1 import recognition_pb2_grpc


@pytest.fixture(scope="module")
def server_address(grpc_tls: GrpcTls):
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "recognition_service"],
        env={
            **os.environ,
            **grpc_tls.env,
            "RECOGNITION_LISTEN": address,
            "RECOGNITION_THREADS": "4",
            "LOG_LEVEL": "INFO",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_serving(address, "faceauth.recognition.v1.RecognitionService", process, security=grpc_tls.client)
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
def stub(server_address, grpc_tls: GrpcTls):
    credentials = grpc_tls.client.channel_credentials()
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.secure_channel(server_address, credentials, options=options) as channel:
        yield recognition_pb2_grpc.RecognitionServiceStub(channel)
