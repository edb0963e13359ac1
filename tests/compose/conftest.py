"""The compose tier (``make test-compose``): every image built, docker-compose.yml brought up with Podman, the API
checked through the gateway's published port, everything the run created removed afterwards, even on failure.

One stack per session (``stack``): the tests in test_stack.py run in file order against it. A machine without what
the tier needs fails here with the missing programs named (``.ci/run`` installs them); nothing is skipped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO_ROOT

from .stack import (
    BASE_IMAGES,
    IMAGE_TAG,
    IMAGES,
    ComposeProject,
    HealthTicker,
    StackError,
    build_images,
    docker_api,
    ensure_base_images,
    image_size_mb,
    missing_tools,
    new_project_name,
    write_env_file,
)

#: what the run measured, printed in the terminal summary and written to test-output/compose-timings.json
MEASURED: dict[str, object] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not MEASURED:
        return
    terminalreporter.section("compose tier")
    for name, value in MEASURED.items():
        terminalreporter.write_line(f"{name}: {value}")
    output = REPO_ROOT / "test-output"
    output.mkdir(exist_ok=True)
    (output / "compose-timings.json").write_text(json.dumps(MEASURED, indent=2) + "\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _gateway_certificate(folder: Path) -> Path:
    """A self-signed certificate for localhost / 127.0.0.1, readable by the gateway's uid 101 (test only)."""
    folder.mkdir(mode=0o755)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(folder / "privkey.pem"),
            "-out",
            str(folder / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    for name in ("privkey.pem", "fullchain.pem"):
        (folder / name).chmod(0o644)
    return folder / "fullchain.pem"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    missing = missing_tools()
    if missing:
        pytest.fail(
            "the compose tier needs Podman (with netavark and aardvark-dns), runc, iptables, docker-compose, "
            "debootstrap and openssl; missing: " + ", ".join(missing) + " (.ci/run installs them)",
            pytrace=False,
        )
    work = tmp_path_factory.mktemp("compose")
    # Build logs and the stack's logs stay where CI keeps them (test-output/ is not in git, nor in any image).
    logs = REPO_ROOT / "test-output" / "compose"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    started = time.monotonic()
    MEASURED["base images built (s)"] = round(ensure_base_images(), 1)
    build_seconds = build_images(logs)
    MEASURED["image builds (s)"] = {name: round(seconds, 1) for name, seconds in build_seconds.items()}
    MEASURED["image builds, total (s)"] = round(sum(build_seconds.values()), 1)
    MEASURED["image sizes (MB)"] = {name: round(image_size_mb(f"faceauth/{name}:{IMAGE_TAG}")) for name in IMAGES} | {
        name: round(image_size_mb(image)) for name, image in BASE_IMAGES.items()
    }

    tls_dir = work / "gateway-tls"
    certificate = _gateway_certificate(tls_dir)
    values = {
        "FACEAUTH_SECRET_KEY": secrets.token_hex(32),
        "FACEAUTH_TEMPLATE_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "REDIS_PASSWORD": secrets.token_hex(16),
        "GATEWAY_TLS_DIR": str(tls_dir),
        "GATEWAY_HTTPS_PUBLISH": str(_free_port()),
        "GATEWAY_HTTP_PUBLISH": str(_free_port()),
        "FACEAUTH_IMAGE_TAG": IMAGE_TAG,
        **BASE_IMAGES,
    }
    env_file = work / "compose.env"
    write_env_file(env_file, values)
    with docker_api(work) as docker_host:
        project = ComposeProject(new_project_name(), env_file, values, docker_host, logs, certificate)
        ticker = HealthTicker(project.name)
        ticker.start()
        try:
            MEASURED["first up, to every service healthy (s)"] = round(project.up(), 1)
            yield project
        finally:
            with contextlib.suppress(StackError, subprocess.TimeoutExpired):
                (logs / "compose.log").write_text(project.logs())
            left_by_down = project.remove_everything()
            ticker.stop()
            MEASURED["whole tier (s)"] = round(time.monotonic() - started, 1)
            still_there = project.leftovers()
            assert not still_there, f"the run left {still_there} behind"
            assert not left_by_down, f"`docker-compose down -v` left {left_by_down} behind"
