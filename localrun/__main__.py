"""Run the whole faceauth stack on this machine: ``make run`` (``python -m localrun``, after ``make setup``).

Decides where Postgres and Redis are (DATABASE_URL / REDIS_URL, else the local servers, else an embedded
SQLite file + Redis-compatible server for trying it out), applies the migrations, starts liveness,
recognition, auth-web and the nginx gateway as child processes, waits until each is healthy, prints the
URL and streams every child's log lines with a ``[service]`` prefix. Ctrl-C (or SIGTERM) stops them all;
if one of them dies, everything is stopped and the exit status is non-zero.

Settings are environment variables (docs/configuration.md, "gateway and local run").

gRPC between auth-web and the model services is mutual TLS: on first run a private CA and the certificates
are made under ``var/grpc-tls/`` (``faceauth_common.tls``), unless the environment brings its own
(``GRPC_TLS_CA`` ...) or asks for plaintext (``GRPC_INSECURE=true``, development only).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from localrun.certificates import prepare_grpc_tls
from localrun.demo import demo_app
from localrun.demo import enabled as demo_enabled
from localrun.gateway import nginx_command, prepare_gateway
from localrun.network import check_ports, connect_host, listen_spec, split_address
from localrun.readiness import http_status, wait_until_ready
from localrun.services import auth_web_url, child_environment, service_commands
from localrun.settings import REPO_ROOT, RunError, RunSettings
from localrun.stores import choose_backends, redact, redis_pings, serve_embedded_redis
from localrun.supervisor import Console, Supervisor, restart_crashed

VENV_DIR = REPO_ROOT / ".venv"


def run(env: Mapping[str, str], console: Console) -> int:
    settings = RunSettings.from_env(env)
    use_gateway = settings.nginx is not None
    if not use_gateway:
        console.warn(
            "nginx is not installed, so there is no gateway (TLS, security headers, rate limits). auth-web is served "
            "directly on http://localhost, which browsers allow the camera on. Install nginx for the full stack."
        )
    check_ports(settings, use_gateway)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    # Before any child reads its settings (auth-web's, migrate included, check that the files exist).
    prepare_grpc_tls(settings, console)
    backends = choose_backends(settings, env, console)
    console.say(f"database: {redact(backends.database_url)}")
    console.say(f"redis: {redact(backends.redis_url)}")

    python = sys.executable
    child_env = child_environment(
        env, settings, database_url=backends.database_url, redis_url=backends.redis_url, use_gateway=use_gateway
    )

    supervisor = Supervisor(console, settings.stop_timeout)

    def request_stop(signum: int, _frame: object) -> None:
        if not supervisor.stopping.is_set():
            console.say(f"{signal.Signals(signum).name}: stopping everything…")
        supervisor.stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)

    started = time.monotonic()
    try:
        checks: list[tuple[str, Callable[[], bool]]] = []
        if backends.embedded_redis_port is not None:
            supervisor.start("redis", [python, "-m", "localrun", "--embedded-redis",
                                       f"127.0.0.1:{backends.embedded_redis_port}"], child_env)  # fmt: skip
            wait_until_ready(supervisor, [("redis", lambda: redis_pings(backends.redis_url))], 30, started)

        console.say("applying database migrations")
        code = supervisor.run_once("migrate", [python, "-m", "auth_web", "migrate"], child_env, timeout=300)
        if code != 0:
            raise RunError(f"migrations failed (exit status {code}); see the [migrate] lines above")
        if supervisor.stopping.is_set():
            return 0

        services = service_commands(settings, python)
        for service in services:
            supervisor.start(service.name, service.argv, child_env)
        checks += [(service.name, service.ready) for service in services]
        if use_gateway:
            assert settings.nginx is not None
            gateway_config = prepare_gateway(settings, console)
            test = subprocess.run(nginx_command(settings.nginx, gateway_config, "-t", "-q"),
                                  capture_output=True, text=True, check=False)  # fmt: skip
            if test.returncode != 0:
                raise RunError(f"nginx rejected the generated config {gateway_config}:\n{test.stderr.strip()}")
            supervisor.start("gateway", nginx_command(settings.nginx, gateway_config), child_env)
            probe_host = connect_host(settings.bind_address)
            ready_url = f"https://{listen_spec(probe_host, settings.https_port)}/readyz"
        else:
            ready_url = f"{auth_web_url(settings)}/readyz"
        checks.append(("stack (/readyz)", lambda: http_status(ready_url) == 200))
        demo = demo_app(settings, env, child_env, python) if demo_enabled(env) else None
        if demo is not None:
            # The demo relying party: its client registered at faceauth, then its own process.
            if supervisor.run_once("demo-register", demo.register, child_env, timeout=120) != 0:
                raise RunError("registering the demo app's client failed; see the [demo-register] lines above")
            supervisor.start("demo-app", demo.argv, demo.env)
            checks.append(("demo-app", demo.ready))
        wait_until_ready(supervisor, checks, settings.ready_timeout, started)
        if supervisor.stopping.is_set():
            return 0

        url = settings.url if use_gateway else f"http://localhost:{split_address(settings.auth_web_listen)[1]}/"
        banner = f"faceauth is running at {url}"
        console.say("=" * len(banner))
        console.say(banner)
        if demo is not None:
            console.say(f"demo app (Sign in with faceauth): {demo.url}/")
        if use_gateway:
            console.say(f"forward-auth demo (nginx auth_request): {url.rstrip('/')}/demo/protected/")
        if use_gateway and settings.tls_cert is None:
            console.say("(self-signed certificate: your browser asks you to accept it once)")
        console.say("Ctrl-C stops everything.")
        console.say("=" * len(banner))

        crashes: list[float] = []
        while not supervisor.stopping.is_set():
            dead = supervisor.died()
            if dead is not None:
                restart_crashed(supervisor, dead, crashes)
            supervisor.stopping.wait(0.5)
        return 0
    except RunError as error:
        console.line("run", f"ERROR: {error}")
        console.say("stopping everything…")
        return 1
    finally:
        supervisor.stop_all()
        console.say("all stopped")


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV_DIR.resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localrun", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedded-redis", metavar="HOST:PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.embedded_redis:
        return serve_embedded_redis(args.embedded_redis)
    if not in_venv():
        # Run directly (not through `make run`): set up the venv if needed, then continue inside it.
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "setup.sh")], check=True)
        python = str(VENV_DIR / "bin" / "python")
        arguments = [python, "-m", "localrun", *(argv or sys.argv[1:])]
        os.execv(python, arguments)  # noqa: S606 (re-run the local run inside the venv)
    console = Console()
    try:
        return run(os.environ, console)
    except RunError as error:
        console.line("run", f"ERROR: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
