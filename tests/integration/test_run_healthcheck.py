"""`python -m faceauth_common.healthcheck HOST:PORT [SERVICE]`: the grpc.health.v1 probe docker-compose's
health checks and the local run's readiness wait use."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from conftest import free_port


@pytest.fixture(scope="module")
def health_server() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("faceauth.test.Loading", health_pb2.HealthCheckResponse.NOT_SERVING)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    server.start()
    yield address
    server.stop(0)


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "faceauth_common.healthcheck", *args], capture_output=True, text=True, timeout=30
    )


def test_serving_server_exits_0(health_server: str) -> None:
    result = probe(health_server)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SERVING"


def test_not_serving_service_exits_1(health_server: str) -> None:
    result = probe(health_server, "faceauth.test.Loading")
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stderr


def test_unknown_service_exits_1(health_server: str) -> None:
    result = probe(health_server, "faceauth.test.Nope")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


def test_nothing_listening_exits_1_within_the_timeout() -> None:
    started = time.monotonic()
    result = probe(f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr or "DEADLINE_EXCEEDED" in result.stderr
    assert time.monotonic() - started < 15
