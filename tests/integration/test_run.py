"""The local run command (`python -m localrun`, what `make run` starts) brings the whole stack up behind the
gateway and takes it all down again: against the real Postgres and Redis, and once in the embedded
fallback (forced with FACEAUTH_EMBEDDED=1)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg2
import pytest
import redis
from psycopg2 import sql

from conftest import REPO_ROOT, free_port
from faceauth_common.healthcheck import HealthCheckError, check_health
from faceauth_common.tls import GrpcSecurity
from localrun.network import port_is_free
from localrun.settings import RunSettings

pytestmark = pytest.mark.skipif(
    RunSettings.from_env({}).nginx is None, reason="nginx is not installed (.ci/run installs it)"
)

BANNER = re.compile(r"faceauth is running at (https://localhost:\d+/)")
STARTED = re.compile(r"\[run\]\s+started (\S+) \(pid (\d+)\)")
_SERVICE_LISTEN = ("AUTH_WEB_LISTEN", "LIVENESS_LISTEN", "RECOGNITION_LISTEN", "DEMO_LISTEN")
_OWN_PREFIXES = ("GATEWAY_", "FACEAUTH_", "AUTH_", "LIVENESS_", "RECOGNITION_", "GRPC_", "DEMO_", "LOCALRUN_")
START_TIMEOUT = 240  # first start on a busy 2-core machine loads TensorFlow and dlib in parallel


@dataclass
class Stack:
    process: subprocess.Popen
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    @property
    def ports(self) -> list[int]:
        return [
            int(self.env["GATEWAY_HTTPS_PORT"]),
            int(self.env["GATEWAY_HTTP_PORT"]),
            *(int(self.env[name].rsplit(":", 1)[1]) for name in _SERVICE_LISTEN),
        ]

    @property
    def children(self) -> dict[str, int]:
        return {m.group(1): int(m.group(2)) for line in self.lines if (m := STARTED.search(line))}

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def base(self) -> str:
        return f"https://127.0.0.1:{self.env['GATEWAY_HTTPS_PORT']}"

    def client(self) -> httpx.Client:
        cert = Path(self.env["FACEAUTH_VAR_DIR"]) / "gateway" / "tls" / "localhost.crt"
        return httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=30)


def _stack_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_OWN_PREFIXES) and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        FACEAUTH_VAR_DIR=str(var_dir),
        GATEWAY_HTTPS_PORT=str(free_port()),
        GATEWAY_HTTP_PORT=str(free_port()),
        AUTH_WEB_LISTEN=f"127.0.0.1:{free_port()}",
        LIVENESS_LISTEN=f"127.0.0.1:{free_port()}",
        RECOGNITION_LISTEN=f"127.0.0.1:{free_port()}",
        DEMO_LISTEN=f"127.0.0.1:{free_port()}",
        AUTH_WEB_WORKERS="1",
        FACEAUTH_READY_TIMEOUT=str(START_TIMEOUT),
        NO_COLOR="1",
    )
    env.update(overrides)
    return env


def start_stack(env: dict[str, str]) -> Stack:
    process = subprocess.Popen(
        [sys.executable, "-m", "localrun"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    stack = Stack(process, env)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.lines.append(line.rstrip("\n"))
            if match := BANNER.search(line):
                stack.url = match.group(1)
                stack.ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT + 30
    while not stack.ready.wait(0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_stack(stack)
            pytest.fail(f"the stack did not come up (exit {process.returncode}):\n{stack.output[-6000:]}")
    return stack


def stop_stack(stack: Stack, signum: int = signal.SIGINT, timeout: float = 90) -> int:
    if stack.process.poll() is None:
        stack.process.send_signal(signum)
    try:
        return stack.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(stack.process.pid, signal.SIGKILL)
        stack.process.wait()
        raise AssertionError(f"the local run did not stop within {timeout}s:\n{stack.output[-4000:]}") from None


def assert_all_gone(stack: Stack) -> None:
    assert set(stack.children) >= {"liveness", "recognition", "auth-web", "gateway"}, stack.output[-3000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [name for name, pid in stack.children.items() if _process_group_alive(pid)]
        busy = [port for port in stack.ports if not port_is_free("127.0.0.1", port)]
        if not alive and not busy:
            return
        time.sleep(0.2)
    raise AssertionError(f"left running: {alive}; ports still bound: {busy}\n{stack.output[-3000:]}")


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def real_backends() -> Iterator[dict[str, str]]:
    """A fresh database (the local run must create it) and a Redis key prefix of its own, removed afterwards."""
    suffix = uuid.uuid4().hex[:10]
    database = f"faceauth_test_run_{suffix}"
    prefix = f"faceauth-test-run-{suffix}:"
    yield {
        "DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "AUTH_REDIS_PREFIX": prefix,
    }
    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    connection.close()
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        client.delete(key)
    client.close()


def _database_exists(name: str) -> bool:
    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cursor.fetchone() is not None
    finally:
        connection.close()


def test_run_serves_the_stack_through_the_gateway_and_stops_cleanly(
    tmp_path: Path, real_backends: dict[str, str]
) -> None:
    env = _stack_env(tmp_path / "var", **real_backends)
    stack = start_stack(env)
    try:
        assert stack.url == f"https://localhost:{env['GATEWAY_HTTPS_PORT']}/"
        assert "EMBEDDED MODE" not in stack.output
        database = real_backends["DATABASE_URL"].rsplit("/", 1)[1]
        assert _database_exists(database)
        with stack.client() as client:
            ready = client.get(f"{stack.base()}/readyz", headers={"X-Request-ID": "not-trusted-by-default"})
            assert ready.status_code == 200, ready.text
            assert re.fullmatch(r"[0-9a-f]{32}", ready.headers["x-request-id"])
        # gRPC is mutual TLS by default: the run made its CA, and a plaintext client is refused.
        assert "made the gRPC mutual TLS certificates" in stack.output
        assert (tmp_path / "var" / "grpc-tls" / "ca" / "ca.key").stat().st_mode & 0o077 == 0
        for listen in (env["LIVENESS_LISTEN"], env["RECOGNITION_LISTEN"]):
            with pytest.raises(HealthCheckError, match="UNAVAILABLE"):
                check_health(listen, GrpcSecurity(insecure=True), timeout=3)
        with stack.client() as client:
            # The real auth-web behind the gateway: a page with the gateway's headers.
            page = client.get(f"{stack.base()}/login")
            assert page.status_code == 200, page.text[:500]
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            assert page.headers["strict-transport-security"].startswith("max-age=")
            # The gateway's request id reaches auth-web: its log line for this request carries it.
            request_id = page.headers["x-request-id"]
            deadline = time.monotonic() + 10
            while not any(line.startswith("[auth-web]") and request_id in line for line in stack.lines):
                assert time.monotonic() < deadline, f"auth-web never logged request id {request_id}"
                time.sleep(0.2)
            # Its static assets come compressed and cacheable.
            assets = re.findall(r'(?:href|src)="(/static/[^"?]+\.(?:css|js))', page.text)
            assert assets, page.text[:1000]
            asset = client.get(f"{stack.base()}{assets[0]}", headers={"Accept-Encoding": "gzip"})
            assert asset.status_code == 200
            assert "max-age=" in asset.headers["cache-control"]
            # Oversized uploads stop at the gateway.
            too_large = client.post(
                f"{stack.base()}/api/login", files={"frames": ("f.jpg", b"\0" * (26 * 1024 * 1024), "image/jpeg")}
            )
            assert too_large.status_code == 413
            redirect = client.get(f"http://127.0.0.1:{env['GATEWAY_HTTP_PORT']}/login", follow_redirects=False)
            assert redirect.status_code == 301
            # The demo relying party runs beside it (its URL printed), registered as a client, its sign-in going to
            # faceauth's authorization endpoint; the forward-auth demo path sends a signed-out visitor to sign in.
            demo_url = f"http://localhost:{env['DEMO_LISTEN'].rsplit(':', 1)[1]}/"
            assert f"demo app (Sign in with faceauth): {demo_url}" in stack.output
            sign_in = httpx.get(f"http://{env['DEMO_LISTEN']}/login", follow_redirects=False, timeout=30)
            assert sign_in.status_code == 302, stack.output[-3000:]
            assert sign_in.headers["location"].startswith(f"{stack.url}oauth2/authorize?")
            protected = client.get(f"{stack.base()}/demo/protected/", follow_redirects=False)
            assert protected.status_code == 302 and "/auth/start?rd=" in protected.headers["location"]
    finally:
        code = stop_stack(stack)
    assert code == 0, stack.output[-4000:]
    assert_all_gone(stack)
    assert stack.lines[-1].endswith("all stopped")


def test_embedded_fallback_runs_without_postgres_and_redis_and_a_dead_child_is_restarted(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    stack = start_stack(_stack_env(var_dir, FACEAUTH_EMBEDDED="1"))
    try:
        assert "EMBEDDED MODE" in stack.output and "NOT FOR PRODUCTION" in stack.output
        assert "redis" in stack.children
        assert (var_dir / "faceauth.sqlite3").is_file()
        with stack.client() as client:
            assert client.get(f"{stack.base()}/readyz").status_code == 200
            assert client.get(f"{stack.base()}/login").status_code == 200
            # A child that dies (a crash) is started again and the stack serves again.
            os.kill(stack.children["recognition"], signal.SIGKILL)
            deadline = time.monotonic() + 120
            while "restarting it" not in stack.output and time.monotonic() < deadline:
                time.sleep(0.2)
            while client.get(f"{stack.base()}/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert client.get(f"{stack.base()}/readyz").status_code == 200
    finally:
        code = stop_stack(stack)
    assert "recognition exited unexpectedly with status -9; restarting it" in stack.output
    assert stack.process.poll() is not None and code == 0, stack.output[-4000:]
    assert_all_gone(stack)


@contextlib.contextmanager
def socket_bound(port: int) -> Iterator[None]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def test_run_refuses_a_busy_port_with_a_clear_message(tmp_path: Path) -> None:
    env = _stack_env(tmp_path / "var", FACEAUTH_EMBEDDED="1")
    with socket_bound(int(env["GATEWAY_HTTPS_PORT"])):
        result = subprocess.run(
            [sys.executable, "-m", "localrun"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{env['GATEWAY_HTTPS_PORT']} (GATEWAY_HTTPS_PORT)" in result.stdout
    assert "started" not in result.stdout
