"""The whole faceauth stack for the browser tests, started the way ``make run`` (``python -m localrun``) starts it.

Why not simply run ``python -m localrun`` as a subprocess: the run command treats a child that exits as fatal and
stops everything (right for a person at a terminal), but the browser tests must stop and restart the
recognition service mid-run (scenario 6) and restart auth-web with another challenge configuration
(scenario 4). So this module drives the run command's own public parts — its settings, port check,
database creation, ``child_environment()`` and ``service_commands()`` (the children's environment, commands
and readiness probes), ``Supervisor`` (process groups, log pumping, ordered stop, stop/restart of one child),
gateway config rendering — in the same order as ``localrun.__main__.run()``.

Everything is private to the test session: free ports, a throwaway Postgres database, a Redis key prefix,
a temporary var/ folder (self-signed certificate, the gRPC mutual TLS CA and certificates, gateway runtime
files). ``stop()`` stops every process, drops the database, deletes the Redis keys and checks that the ports
are free again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import psycopg2
import redis
from psycopg2 import sql

from conftest import free_port
from localrun.certificates import prepare_grpc_tls
from localrun.demo import DemoApp, demo_app
from localrun.gateway import nginx_command, prepare_gateway
from localrun.network import check_ports, port_is_free, split_address
from localrun.readiness import http_status, wait_until_ready
from localrun.services import child_environment, service_commands
from localrun.settings import RunSettings
from localrun.stores import ensure_postgres_database
from localrun.supervisor import Console, Supervisor

PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "connect_timeout": 5}
REDIS_URL = "redis://127.0.0.1:6379/0"
READY_TIMEOUT = 300.0  # a cold start on a busy 2-core machine loads TensorFlow and dlib side by side
_OWN_PREFIXES = ("GATEWAY_", "FACEAUTH_", "AUTH_", "LIVENESS_", "RECOGNITION_", "GRPC_", "DEMO_", "LOCALRUN_")


@dataclass
class Stack:
    log_path: Path
    var_dir: Path
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        token = secrets.token_hex(5)
        self.database_name = f"faceauth_e2e_{token}"
        self.database_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.database_name}"
        self.redis_prefix = f"faceauth_e2e_{token}:"
        # The caller's environment minus any faceauth setting that would leak into the stack.
        base = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
        base.pop("DATABASE_URL", None)
        base.pop("REDIS_URL", None)
        self.env: dict[str, str] = {
            **base,
            "FACEAUTH_VAR_DIR": str(self.var_dir),
            "GATEWAY_HTTPS_PORT": str(free_port()),
            "GATEWAY_HTTP_PORT": str(free_port()),
            "AUTH_WEB_LISTEN": f"127.0.0.1:{free_port()}",
            "LIVENESS_LISTEN": f"127.0.0.1:{free_port()}",
            "RECOGNITION_LISTEN": f"127.0.0.1:{free_port()}",
            "DEMO_LISTEN": f"127.0.0.1:{free_port()}",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL,
            "AUTH_REDIS_PREFIX": self.redis_prefix,
            "FACEAUTH_ENV": "development",
            "FACEAUTH_SECRET_KEY": secrets.token_urlsafe(48),
            "NO_COLOR": "1",
            **self.overrides,
        }
        self.settings = RunSettings.from_env(self.env)
        self.use_gateway = self.settings.nginx is not None
        self._log: TextIO | None = None
        self.console: Console | None = None
        self.supervisor: Supervisor | None = None
        self.child_env: dict[str, str] = {}
        self.services = {service.name: service for service in service_commands(self.settings, sys.executable)}
        self.demo: DemoApp | None = None

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What the browser opens: the gateway over TLS (or auth-web on localhost when nginx is missing)."""
        if self.use_gateway:
            return f"https://localhost:{self.settings.https_port}"
        return f"http://localhost:{split_address(self.settings.auth_web_listen)[1]}"

    @property
    def ports(self) -> list[tuple[str, int]]:
        ports = [
            split_address(self.settings.liveness_listen),
            split_address(self.settings.recognition_listen),
            split_address(self.settings.auth_web_listen),
            split_address(self.env["DEMO_LISTEN"]),
        ]
        if self.use_gateway:
            ports += [
                (self.settings.bind_address, self.settings.https_port),
                (self.settings.bind_address, self.settings.http_port),
            ]
        return ports

    def ready(self) -> bool:
        return http_status(f"{self.base_url}/readyz") == 200

    def readiness(self) -> tuple[int, dict[str, str]]:
        """/readyz through the gateway: the status code and auth-web's per-dependency checks."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the run's self-signed certificate
        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=10, context=context) as response:
                return response.status, json.loads(response.read()).get("checks", {})
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}").get("checks", {})

    # -- start and stop ----------------------------------------------------------------------------

    def start(self) -> None:
        """Everything ``localrun.__main__.run()`` does before printing the URL, with the test's settings."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        self.console = Console(self._log)
        self.supervisor = Supervisor(self.console, self.settings.stop_timeout)
        check_ports(self.settings, self.use_gateway)
        ensure_postgres_database(self.database_url)
        prepare_grpc_tls(self.settings, self.console)
        self.child_env = child_environment(
            self.env, self.settings, database_url=self.database_url, redis_url=REDIS_URL, use_gateway=self.use_gateway
        )
        started = time.monotonic()
        migrate = [sys.executable, "-m", "auth_web", "migrate"]
        code = self.supervisor.run_once("migrate", migrate, self.child_env, 300)
        if code != 0:
            raise RuntimeError(f"migrations failed (exit {code}); see {self.log_path}")
        for service in self.services.values():
            self.supervisor.start(service.name, service.argv, self.child_env)
        checks: list[tuple[str, Callable[[], bool]]] = [(s.name, s.ready) for s in self.services.values()]
        if self.use_gateway:
            assert self.settings.nginx is not None
            config = prepare_gateway(self.settings, self.console)
            self.supervisor.start("gateway", nginx_command(self.settings.nginx, config), self.child_env)
        # The demo relying party, as `make run` starts it (localrun/demo.py).
        self.demo = demo_app(self.settings, self.env, self.child_env)
        if self.supervisor.run_once("demo-register", self.demo.register, self.child_env, 120) != 0:
            raise RuntimeError(f"registering the demo app failed; see {self.log_path}")
        self.supervisor.start("demo-app", self.demo.argv, self.demo.env)
        checks.append(("demo-app", self.demo.ready))
        checks.append(("stack (/readyz)", self.ready))
        wait_until_ready(self.supervisor, checks, READY_TIMEOUT, started)
        self.console.say(f"e2e stack ready at {self.base_url} ({time.monotonic() - started:.1f}s)")

    def stop(self) -> list[str]:
        """Stop every process, drop the database and the Redis keys; returns what was left behind (if anything)."""
        problems: list[str] = []
        if self.supervisor is not None:
            pids = {child.name: child.process.pid for child in self.supervisor.children}
            self.supervisor.stop_all()
            for name, pid in pids.items():
                if _group_alive(pid):
                    problems.append(f"{name} (process group {pid}) still running")
        deadline = time.monotonic() + 10
        busy = self._busy_ports()
        while busy and time.monotonic() < deadline:
            time.sleep(0.2)
            busy = self._busy_ports()
        problems += [f"port {host}:{port} still in use" for host, port in busy]
        with contextlib.suppress(psycopg2.Error):
            admin = psycopg2.connect(**PG_ADMIN)
            admin.autocommit = True
            with admin.cursor() as cursor:
                query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database_name))
                cursor.execute(query)
            admin.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=self.redis_prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        if self.console is not None:
            self.console.say("e2e stack stopped")
        if self._log is not None:
            self._log.close()
            self._log = None
        return problems

    def _busy_ports(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port in self.ports if not port_is_free(host, port)]

    # -- one service at a time ---------------------------------------------------------------------

    def stop_service(self, name: str) -> int:
        """SIGTERM to the service's process group (what ``make run`` sends at Ctrl-C); returns its exit status."""
        assert self.supervisor is not None
        return self.supervisor.stop(name)

    def start_service(self, name: str, extra_env: Mapping[str, str] | None = None) -> None:
        """Start a stopped service again with the stack's environment (plus ``extra_env``); wait until it serves."""
        assert self.supervisor is not None
        if self.supervisor.child(name) is not None:
            raise RuntimeError(f"{name} is already running")
        service = self.services[name]
        started = time.monotonic()
        self.supervisor.restart(name, {**self.child_env, **(extra_env or {})})
        wait_until_ready(self.supervisor, [(name, service.ready)], READY_TIMEOUT, started)

    def restart_auth_web(self, **changes: str) -> None:
        """auth-web again with some settings changed (the gateway keeps running in front of it)."""
        self.stop_service("auth-web")
        self.start_service("auth-web", changes)

    def log_tail(self, characters: int = 6000) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-characters:]
        except OSError:
            return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
