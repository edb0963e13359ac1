"""Repository-wide test setup: tier markers from folders, paths to real data, free ports, gRPC readiness."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parent
_TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
                break


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (override with FACEAUTH_SHARED_DATA)."""
    path = Path(os.environ.get("FACEAUTH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"real test data not found at {path}; set FACEAUTH_SHARED_DATA")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unused_port() -> int:
    return free_port()


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
