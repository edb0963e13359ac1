"""docker-compose's gRPC mutual TLS wiring, run for real without containers: the `certs` service's command
writes the volumes, recognition-service starts with exactly its compose environment (paths moved under a
temporary folder), its own health check (the container's HEALTHCHECK) answers with the probe certificate of
its volume, and auth-web's environment reaches it under the name compose gives the service."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import REPO_ROOT, free_port, stop_process
from faceauth_common.tls import TLS_VARIABLES, GrpcSecurity

MOUNT_ROOT = "/etc/faceauth"


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]


def moved(value: str, root: Path) -> str:
    """``value`` (a path, or ``--option=path``) with the container's /etc/faceauth moved under ``root``."""
    option, equals, path = value.rpartition("=")
    if path.startswith(MOUNT_ROOT + "/"):
        return f"{option}{equals}{root}{path[len(MOUNT_ROOT) :]}"
    return value


def compose_env(service: dict, root: Path, volumes: dict[str, Path]) -> dict[str, str]:
    """The service's compose environment (its own values only), its volume mounted where compose mounts it."""
    env: dict[str, str] = {}
    for entry in service["environment"]:
        if "=" in entry and "${" not in entry:
            name, value = entry.split("=", 1)
            env[name] = value
    (volume_spec,) = service["volumes"]
    volume, target = volume_spec.split(":")[:2]
    mounted = root / "mounts" / volume
    if not mounted.exists():
        mounted.parent.mkdir(parents=True, exist_ok=True)
        mounted.symlink_to(volumes[volume])
    return {name: value.replace(target, str(mounted)) for name, value in env.items()}


def test_the_compose_certificates_serve_and_probe_recognition(services: dict[str, dict], tmp_path: Path) -> None:
    # The `certs` one-shot, with every volume placed under tmp_path.
    command = [moved(argument, tmp_path) for argument in services["certs"]["command"]]
    assert not any(MOUNT_ROOT in argument for argument in command), command  # never this machine's /etc
    volumes = {}
    for spec in services["certs"]["volumes"]:
        volume, target = spec.split(":")[:2]
        volumes[volume] = Path(moved(target, tmp_path))
    base = {k: v for k, v in os.environ.items() if k not in TLS_VARIABLES and k != "FACEAUTH_ENV"}
    made = subprocess.run([sys.executable, *command[1:]], env=base, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "5 issued" in made.stdout

    recognition_env = compose_env(services["recognition-service"], tmp_path, volumes)
    assert recognition_env["FACEAUTH_ENV"] == "production"
    address = f"127.0.0.1:{free_port()}"
    recognition_env.update(RECOGNITION_LISTEN=address, RECOGNITION_METRICS_LISTEN="off")
    process = subprocess.Popen(
        [sys.executable, "-m", "recognition_service"],
        env={**base, **recognition_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The container's health check: `python -m faceauth_common.healthcheck 127.0.0.1:50052` with the
        # container's environment (port moved). It answers NOT_SERVING while the model loads: any answer proves
        # the TLS handshake with the volume's probe certificate.
        test = services["recognition-service"]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"]
        probe = [sys.executable, *test[2:-1], address, "--timeout", "2"]
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"recognition_service exited with its compose settings: {process.communicate()[0][-2000:]}")
            result = subprocess.run(probe, env={**base, **recognition_env}, capture_output=True, text=True, timeout=30)
            if result.returncode == 0 or "NOT_SERVING" in result.stderr:
                break
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.5)

        # auth-web's environment, dialling the name compose gives the service (no DNS here: the name is given
        # to the TLS check the way a resolved `recognition-service:50052` target would give it).
        auth_env = compose_env(services["auth-web"], tmp_path, volumes)
        security = GrpcSecurity.client_from_env({**auth_env, "FACEAUTH_ENV": "production"})
        host = auth_env["RECOGNITION_TARGET"].rsplit(":", 1)[0]
        options = [("grpc.ssl_target_name_override", host)]
        with grpc.secure_channel(address, security.channel_credentials(), options=options) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    finally:
        stop_process(process)
