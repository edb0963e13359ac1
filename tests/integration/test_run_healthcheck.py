"""`python -m faceauth_common.healthcheck HOST:PORT [SERVICE]`: the grpc.health.v1 probe docker-compose's
health checks and the local run's readiness wait use, over mutual TLS like every other client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from conftest import GrpcTls, free_port


@pytest.fixture(scope="module")
def health_server(grpc_tls: GrpcTls) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("faceauth.test.Loading", health_pb2.HealthCheckResponse.NOT_SERVING)
    address = f"127.0.0.1:{free_port()}"
    server.add_secure_port(address, grpc_tls.server().server_credentials())
    server.start()
    yield address
    server.stop(0)


@pytest.fixture(scope="module")
def probe_env(grpc_tls: GrpcTls) -> dict[str, str]:
    return {**os.environ, **grpc_tls.env}


def run_probe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "faceauth_common.healthcheck", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


@pytest.fixture
def probe(probe_env: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda *args: run_probe(probe_env, *args)


def test_serving_server_exits_0(health_server: str, probe) -> None:  # type: ignore[no-untyped-def]
    result = probe(health_server)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SERVING"


def test_not_serving_service_exits_1(health_server: str, probe) -> None:  # type: ignore[no-untyped-def]
    result = probe(health_server, "faceauth.test.Loading")
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stderr


def test_unknown_service_exits_1(health_server: str, probe) -> None:  # type: ignore[no-untyped-def]
    result = probe(health_server, "faceauth.test.Nope")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


def test_nothing_listening_exits_1_within_the_timeout(probe) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = probe(f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr or "DEADLINE_EXCEEDED" in result.stderr
    assert time.monotonic() - started < 15


def test_plaintext_probe_is_refused_by_the_tls_server(health_server: str, probe_env: dict[str, str]) -> None:
    plaintext = {**{k: v for k, v in probe_env.items() if not k.startswith("GRPC_")}, "GRPC_INSECURE": "true"}
    result = run_probe(plaintext, health_server, "--timeout", "2")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr


def test_probe_without_tls_settings_says_what_to_set(health_server: str, probe_env: dict[str, str]) -> None:
    bare = {k: v for k, v in probe_env.items() if not k.startswith("GRPC_")}
    result = run_probe(bare, health_server)
    assert result.returncode == 1
    assert "GRPC_TLS_CA" in result.stderr and "GRPC_INSECURE" in result.stderr
