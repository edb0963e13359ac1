"""Repository-wide test setup: tier markers from folders, the real test data (tests/data), free ports, gRPC mutual TLS
material and readiness."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg2
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faceauth_common.grpc_client import secure_channel
from faceauth_common.tls import GrpcSecurity, GrpcTls

REPO_ROOT = Path(__file__).resolve().parent
TEST_DATA = REPO_ROOT / "tests" / "data"
# The machine's Postgres (trust auth) and Redis; tests make their own database / key prefix and remove it.
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/0"
_TIERS = ("unit", "integration", "e2e", "fuzz", "compose")
# Tiers that run only when asked for by marker (`make test-compose` = `pytest -m compose`): they build container
# images and need Podman or Docker, so `make test` leaves them out (reported as deselected, never skipped).
_OPT_IN_TIERS = ("compose",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opted_out: list[pytest.Item] = []
    marker_expression = config.getoption("markexpr", "") or ""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
                if tier in _OPT_IN_TIERS and tier not in marker_expression:
                    opted_out.append(item)
                break
    if opted_out:
        config.hook.pytest_deselected(items=opted_out)
        items[:] = [item for item in items if item not in opted_out]


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The repository's own real test data, ``tests/data`` (licensed for redistribution; origins and licences in
    its README.md). Tests read nothing outside the repository (tests/unit/test_test_data.py checks it)."""
    return TEST_DATA


@contextlib.contextmanager
def throwaway_database(stem: str = "faceauth_test") -> Iterator[str]:
    """A new empty Postgres database (its SQLAlchemy URL), dropped afterwards."""
    name = f"{stem}_{secrets.token_hex(6)}"
    admin = psycopg2.connect(**PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def throwaway_redis_prefix(stem: str = "faceauth_test") -> Iterator[str]:
    """A Redis key prefix of its own; every key under it is deleted afterwards."""
    prefix = f"{stem}_{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


def stop_process(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM (a graceful stop), SIGKILL if it has not exited within ``timeout``; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@contextlib.contextmanager
def recognition_process(grpc_tls: GrpcTls, address: str, workers: int) -> Iterator[subprocess.Popen]:
    """recognition-service with ``workers`` worker processes on ``address``, its JSON log on the process's stdout,
    in a session of its own: on leaving, whatever is left of its process group is killed (a worker left behind would
    hold the pipe open, and ``communicate()`` would wait for ever)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "recognition_service"],
        env={
            **os.environ,
            **grpc_tls.env,
            "RECOGNITION_LISTEN": address,
            "RECOGNITION_WORKERS": str(workers),
            "RECOGNITION_METRICS_LISTEN": "off",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def grpc_tls(tmp_path_factory: pytest.TempPathFactory) -> GrpcTls:
    """A CA and certificates made once per session; tests start the gRPC services with them."""
    return GrpcTls(tmp_path_factory.mktemp("grpc-tls"))


def wait_for_serving(
    address: str,
    service_name: str,
    process: subprocess.Popen,
    timeout: float = 120,
    *,
    security: GrpcSecurity,
) -> list[str]:
    """Poll grpc.health.v1 (over ``security``, the caller's TLS identity) until SERVING; returns the statuses
    seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with secure_channel(address, security) as channel:
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
