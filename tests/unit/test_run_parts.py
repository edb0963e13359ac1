"""The public parts of the local run command (localrun) that tests/e2e/stack.py builds on: the children's
environment and commands, and stopping / restarting one child of the supervisor."""

from __future__ import annotations

import base64
import io
import signal
import sys
import time
from pathlib import Path

import pytest

from localrun.certificates import prepare_grpc_tls
from localrun.network import service_target
from localrun.services import child_environment, service_commands
from localrun.settings import RunError, RunSettings
from localrun.supervisor import MAX_RESTARTS, Console, Supervisor, restart_crashed

# A child that prints a variable, then waits; SIGTERM makes it exit 0 (as the services do), SIGUSR1 is ignored.
CHILD = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "signal.signal(signal.SIGUSR1, signal.SIG_IGN)\n"
    "print('colour=' + os.environ.get('COLOUR', ''), flush=True)\n"
    "while True: time.sleep(0.1)\n"
)


def settings(tmp_path: Path, **env: str) -> RunSettings:
    return RunSettings.from_env({"FACEAUTH_VAR_DIR": str(tmp_path), **env})


def test_service_target_reaches_a_wildcard_bind_on_loopback() -> None:
    assert service_target("0.0.0.0:50051") == "127.0.0.1:50051"
    assert service_target("[::]:50052") == "[::1]:50052"
    assert service_target("10.1.2.3:50051") == "10.1.2.3:50051"


def test_child_environment(tmp_path: Path) -> None:
    run_settings = settings(tmp_path, LIVENESS_LISTEN="0.0.0.0:7001", AUTH_WEB_LISTEN="127.0.0.1:7003")
    env = {"PATH": "/bin", "LIVENESS_LISTEN": "0.0.0.0:7001"}
    child = child_environment(env, run_settings, database_url="sqlite:///x", redis_url="redis://r/0", use_gateway=True)
    assert child["PATH"] == "/bin" and child["PYTHONUNBUFFERED"] == "1"
    assert (child["DATABASE_URL"], child["REDIS_URL"]) == ("sqlite:///x", "redis://r/0")
    assert child["LIVENESS_TARGET"] == "127.0.0.1:7001"
    assert child["RECOGNITION_TARGET"] == "127.0.0.1:50052"
    assert child["AUTH_WEB_LISTEN"] == "127.0.0.1:7003"
    assert child["FACEAUTH_ENV"] == "development" and child["AUTH_PROXY_COUNT"] == "1"
    # A development secret kept under var/, the same on the next run.
    assert child["FACEAUTH_SECRET_KEY"] == (tmp_path / "secret-key").read_text().strip()
    # Likewise the key the face templates are encrypted with: 32 random bytes, private to the user.
    assert child["FACEAUTH_TEMPLATE_KEY"] == (tmp_path / "template-key").read_text().strip()
    assert len(base64.urlsafe_b64decode(child["FACEAUTH_TEMPLATE_KEY"])) == 32
    assert (tmp_path / "template-key").stat().st_mode & 0o077 == 0
    # What the caller sets wins; without the gateway no proxy is trusted.
    own = child_environment(
        {**env, "FACEAUTH_SECRET_KEY": "s" * 40, "LIVENESS_TARGET": "dns:///liveness:50051"},
        run_settings,
        database_url="sqlite:///x",
        redis_url="redis://r/0",
        use_gateway=False,
    )
    assert own["FACEAUTH_SECRET_KEY"] == "s" * 40 and own["LIVENESS_TARGET"] == "dns:///liveness:50051"
    assert own["FACEAUTH_TEMPLATE_KEY"] == child["FACEAUTH_TEMPLATE_KEY"]  # the same on the next run
    assert "AUTH_PROXY_COUNT" not in own


def test_service_commands(tmp_path: Path) -> None:
    services = service_commands(settings(tmp_path), "/venv/bin/python")
    assert [(s.name, s.argv) for s in services] == [
        ("liveness", ["/venv/bin/python", "-m", "liveness_service"]),
        ("recognition", ["/venv/bin/python", "-m", "recognition_service"]),
        ("auth-web", ["/venv/bin/python", "-m", "auth_web", "serve"]),
    ]


def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_supervisor_stops_and_restarts_one_child() -> None:
    output = io.StringIO()
    supervisor = Supervisor(Console(output), stop_timeout=5)
    try:
        first = supervisor.start("one", [sys.executable, "-c", CHILD], {"COLOUR": "red"})
        other = supervisor.start("two", [sys.executable, "-c", CHILD], {"COLOUR": "blue"})
        wait_for(lambda: "[one]" in output.getvalue() and "[two]" in output.getvalue())
        assert supervisor.stop("one") == 0  # SIGTERM, a clean exit
        assert first.process.poll() == 0 and supervisor.child("one") is None
        assert supervisor.died() is None  # a stopped child is not a dead one
        assert other.process.poll() is None and supervisor.child("two") is other
        with pytest.raises(KeyError):
            supervisor.stop("one")
        again = supervisor.restart("one", {"COLOUR": "green"})
        wait_for(lambda: "colour=green" in output.getvalue())
        assert again.process.pid != first.process.pid and supervisor.child("one") is again
        # Restarting a running child stops it first; without new settings it keeps its environment.
        third = supervisor.restart("one")
        assert again.process.poll() == 0
        wait_for(lambda: output.getvalue().count("colour=green") == 2)
        assert third.process.poll() is None
        with pytest.raises(KeyError):
            supervisor.restart("never-started")
    finally:
        supervisor.stop_all()
    assert all(child.process.poll() is not None for child in (first, other, again, third))


def test_supervisor_kills_a_child_that_ignores_its_stop_signal() -> None:
    output = io.StringIO()
    supervisor = Supervisor(Console(output), stop_timeout=0.5)
    try:
        child = supervisor.start("stubborn", [sys.executable, "-c", CHILD], {}, stop_signal=signal.SIGUSR1)
        wait_for(lambda: "colour=" in output.getvalue())  # its signal handlers are in place
        assert supervisor.stop("stubborn") == -signal.SIGKILL
    finally:
        supervisor.stop_all()
    assert child.process.poll() is not None


def test_the_run_makes_its_grpc_ca_once_and_every_child_gets_mutual_tls(tmp_path: Path) -> None:
    run_settings = settings(tmp_path, LIVENESS_LISTEN="0.0.0.0:7001")
    prepare_grpc_tls(run_settings)
    child = child_environment(
        {"PATH": "/bin"}, run_settings, database_url="sqlite:///x", redis_url="redis://r/0", use_gateway=True
    )
    tls_dir = tmp_path / "grpc-tls"
    assert child["GRPC_TLS_CA"] == str(tls_dir / "auth-web" / "ca.crt")
    assert child["LIVENESS_TLS_CERT"] == str(tls_dir / "liveness" / "server.crt")
    assert child["RECOGNITION_TLS_KEY"] == str(tls_dir / "recognition" / "server.key")
    assert child["GRPC_CLIENT_TLS_CERT"] == str(tls_dir / "auth-web" / "client.crt")
    assert "GRPC_INSECURE" not in child
    assert all(Path(child[name]).is_file() for name in ("GRPC_TLS_CA", "LIVENESS_TLS_KEY", "GRPC_CLIENT_TLS_KEY"))
    before = (tls_dir / "liveness" / "server.crt").read_bytes()
    prepare_grpc_tls(run_settings)  # the second run keeps them
    assert (tls_dir / "liveness" / "server.crt").read_bytes() == before


def test_the_callers_own_grpc_settings_win_and_nothing_is_made(tmp_path: Path) -> None:
    run_settings = settings(tmp_path, GRPC_INSECURE="true")
    assert run_settings.grpc_tls_folders is None
    prepare_grpc_tls(run_settings)
    assert not (tmp_path / "grpc-tls").exists()
    child = child_environment(
        {"GRPC_INSECURE": "true"}, run_settings, database_url="sqlite:///x", redis_url="r", use_gateway=False
    )
    assert child["GRPC_INSECURE"] == "true" and "GRPC_TLS_CA" not in child


def test_a_crashed_child_is_restarted_until_it_crashes_in_a_loop() -> None:
    output = io.StringIO()
    supervisor = Supervisor(Console(output), stop_timeout=5)
    crashes: list[float] = []
    try:
        supervisor.start("flaky", [sys.executable, "-c", "import sys; sys.exit(3)"], {})
        for restart in range(MAX_RESTARTS):
            wait_for(lambda: supervisor.died() is not None)
            restart_crashed(supervisor, supervisor.died(), crashes)  # type: ignore[arg-type]
            assert output.getvalue().count("flaky exited unexpectedly with status 3; restarting it") == restart + 1
        wait_for(lambda: supervisor.died() is not None)
        with pytest.raises(RunError, match="4 times in 60s; not restarting it"):
            restart_crashed(supervisor, supervisor.died(), crashes)  # type: ignore[arg-type]
    finally:
        supervisor.stop_all()
