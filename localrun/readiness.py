"""How the local run tells a child is ready: gRPC health SERVING (probed with auth-web's client identity), an
HTTP status, and the wait for a list of such checks while watching for a child that dies."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from faceauth_common.settings import SettingsError
from faceauth_common.tls import GrpcSecurity
from localrun.network import connect_host, split_address
from localrun.settings import RunError, RunSettings
from localrun.supervisor import Supervisor


def grpc_serving(address: str, settings: RunSettings) -> bool:
    """The service listening on ``address`` answers SERVING to a probe with auth-web's client identity."""
    from faceauth_common.healthcheck import HealthCheckError, check_health

    host, port = split_address(address)
    try:
        security = GrpcSecurity.client_from_env(settings.grpc_tls_env)
        return check_health(f"{connect_host(host)}:{port}", security, "", timeout=1.0) == "SERVING"
    except (HealthCheckError, SettingsError):
        return False


def http_status(url: str, timeout: float = 2.0) -> int | None:
    context = ssl.create_default_context()
    # A local probe of our own gateway, which may use a self-signed or not-yet-trusted certificate.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def wait_until_ready(
    supervisor: Supervisor, checks: list[tuple[str, Callable[[], bool]]], timeout: float, started: float
) -> None:
    pending = list(checks)
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while pending:
        if supervisor.stopping.is_set():
            return
        dead = supervisor.died()
        if dead is not None:
            raise RunError(f"{dead.name} exited with status {dead.process.returncode} while starting")
        for check in list(pending):
            name, ready = check
            if ready():
                supervisor.console.say(f"{name} is ready ({time.monotonic() - started:.1f}s)")
                pending.remove(check)
        if not pending:
            return
        now = time.monotonic()
        if now > deadline:
            names = ", ".join(name for name, _ in pending)
            raise RunError(f"not ready after {timeout:.0f}s: {names} (set FACEAUTH_READY_TIMEOUT to wait longer)")
        if now - last_report > 30:
            supervisor.console.say(f"still waiting for {', '.join(name for name, _ in pending)}")
            last_report = now
        supervisor.stopping.wait(0.5)
