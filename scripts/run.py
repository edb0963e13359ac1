"""Run the whole faceauth stack on this machine: ``make run`` (after ``make setup``).

Decides where Postgres and Redis are (DATABASE_URL / REDIS_URL, else the local servers, else an embedded
SQLite file + Redis-compatible server for trying it out), applies the migrations, starts liveness,
recognition, auth-web and the nginx gateway as child processes, waits until each is healthy, prints the
URL and streams every child's log lines with a ``[service]`` prefix. Ctrl-C (or SIGTERM) stops them all;
if one of them dies, everything is stopped and the exit status is non-zero.

Settings are environment variables (docs/configuration.md, "gateway and local run").

The parts are public for tests that need the stack but not this exact loop (tests/e2e/stack.py):
``RunSettings``, ``child_environment()`` and ``service_commands()`` (what every child gets and how each
service starts and shows it is ready), ``service_target()``, ``prepare_grpc_tls()``, ``prepare_gateway()``,
``wait_until_ready()``, and ``Supervisor`` with ``stop(name)`` / ``restart(name)`` of a single child.

gRPC between auth-web and the model services is mutual TLS: on first run a private CA and the certificates
are made under ``var/grpc-tls/`` (``faceauth_common.tls``), unless the environment brings its own
(``GRPC_TLS_CA`` ...) or asks for plaintext (``GRPC_INSECURE=true``, development only).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from faceauth_common.settings import SettingsError, env_int
from faceauth_common.tls import (
    TLS_VARIABLES,
    GrpcSecurity,
    ServiceFolders,
    ensure_certificates,
    server_hosts,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".venv"
GATEWAY_DIR = REPO_ROOT / "gateway"
GATEWAY_TEMPLATE = GATEWAY_DIR / "nginx.conf.template"

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/faceauth"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_WARNING = (
    "EMBEDDED MODE: {what}. This is for trying faceauth out on one machine, NOT FOR PRODUCTION: "
    "the embedded Redis keeps sessions and rate limits in memory (lost on exit) and SQLite is a single file. "
    "Set DATABASE_URL / REDIS_URL or start Postgres and Redis on their default ports."
)
_PLACEHOLDER = re.compile(r"\$\{(GATEWAY_[A-Z0-9_]+)\}")


class RunError(Exception):
    """A problem the user can fix; printed as one clear message."""


# ---------------------------------------------------------------------------------------------------------
# Output


class Console:
    """Serialises lines from the log-pump threads; one ``[name]`` prefix per line, coloured on a terminal."""

    _COLOURS = ("36", "35", "33", "32", "34", "96", "95")

    def __init__(self, stream=sys.stdout) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream
        self.lock = threading.Lock()
        self.colour = stream.isatty() and os.environ.get("NO_COLOR") is None
        self.width = 10
        self._assigned: dict[str, str] = {}

    def _prefix(self, name: str) -> str:
        label = f"[{name}]".ljust(self.width + 2)
        if not self.colour:
            return label
        code = self._assigned.setdefault(name, self._COLOURS[len(self._assigned) % len(self._COLOURS)])
        return f"\033[{code}m{label}\033[0m"

    def line(self, name: str, text: str) -> None:
        with self.lock:
            self.stream.write(f"{self._prefix(name)} {text}\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        self.line("run", text)

    def warn(self, text: str) -> None:
        self.line("run", f"\033[1;33mWARNING: {text}\033[0m" if self.colour else f"WARNING: {text}")


# ---------------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class RunSettings:
    var_dir: Path
    bind_address: str
    https_port: int
    http_port: int
    public_https_port: int
    tls_cert: Path | None
    tls_key: Path | None
    liveness_listen: str
    recognition_listen: str
    auth_web_listen: str
    embedded_forced: bool
    ready_timeout: float
    stop_timeout: float
    nginx: str | None
    gateway_values: dict[str, str] = field(default_factory=dict)
    # The run's own CA and certificates (made by prepare_grpc_tls), or None when the environment sets the gRPC
    # TLS variables (or GRPC_INSECURE) itself.
    grpc_tls_folders: ServiceFolders | None = None
    # The gRPC TLS variables every child gets.
    grpc_tls_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunSettings:
        try:
            return cls._from_env(env)
        except SettingsError as error:
            raise RunError(str(error)) from None

    @classmethod
    def _from_env(cls, env: Mapping[str, str]) -> RunSettings:
        def port(name: str, default: int) -> int:
            return env_int(name, default, env, minimum=1, maximum=65535)

        https_port = port("GATEWAY_HTTPS_PORT", 8443)
        cert, key = env.get("GATEWAY_TLS_CERT", "").strip(), env.get("GATEWAY_TLS_KEY", "").strip()
        if bool(cert) != bool(key):
            raise RunError("set both GATEWAY_TLS_CERT and GATEWAY_TLS_KEY, or neither (a self-signed pair is made)")
        nginx = (
            env.get("GATEWAY_NGINX", "").strip()
            or shutil.which("nginx")
            or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/opt/homebrew/bin:/usr/local/bin")
        )
        if env.get("GATEWAY_NGINX", "").strip() and not shutil.which(nginx or ""):
            raise RunError(f"GATEWAY_NGINX={env['GATEWAY_NGINX']} is not an executable")
        var_dir = Path(env.get("FACEAUTH_VAR_DIR", "").strip() or REPO_ROOT / "var").resolve()
        own_grpc_tls = {name: env[name] for name in TLS_VARIABLES if env.get(name, "").strip()}
        grpc_tls_folders = None if own_grpc_tls else ServiceFolders.under(var_dir / "grpc-tls")
        return cls(
            var_dir=var_dir,
            bind_address=env.get("GATEWAY_BIND", "").strip() or "127.0.0.1",
            https_port=https_port,
            http_port=port("GATEWAY_HTTP_PORT", 8080),
            public_https_port=port("GATEWAY_PUBLIC_HTTPS_PORT", https_port),
            tls_cert=Path(cert).resolve() if cert else None,
            tls_key=Path(key).resolve() if key else None,
            liveness_listen=env.get("LIVENESS_LISTEN", "").strip() or "127.0.0.1:50051",
            recognition_listen=env.get("RECOGNITION_LISTEN", "").strip() or "127.0.0.1:50052",
            auth_web_listen=env.get("AUTH_WEB_LISTEN", "").strip() or "127.0.0.1:8000",
            embedded_forced=env.get("FACEAUTH_EMBEDDED", "").strip().lower() in ("1", "true", "yes", "on"),
            ready_timeout=float(env_int("FACEAUTH_READY_TIMEOUT", 300, env, minimum=1)),
            stop_timeout=float(env_int("FACEAUTH_STOP_TIMEOUT", 20, env, minimum=1)),
            nginx=nginx,
            gateway_values={
                "GATEWAY_LOGIN_RATE": env.get("GATEWAY_LOGIN_RATE", "").strip() or "30r/m",
                "GATEWAY_LOGIN_BURST": env.get("GATEWAY_LOGIN_BURST", "").strip() or "20",
                "GATEWAY_MAX_BODY_SIZE": env.get("GATEWAY_MAX_BODY_SIZE", "").strip() or "17m",
                "GATEWAY_HSTS_MAX_AGE": env.get("GATEWAY_HSTS_MAX_AGE", "").strip() or "31536000",
                "GATEWAY_TRUST_REQUEST_ID": env.get("GATEWAY_TRUST_REQUEST_ID", "").strip() or "off",
                "GATEWAY_STATIC_MAX_AGE": env.get("GATEWAY_STATIC_MAX_AGE", "").strip() or "1h",
                "GATEWAY_ERROR_LOG_LEVEL": env.get("GATEWAY_ERROR_LOG_LEVEL", "").strip() or "warn",
            },
            grpc_tls_folders=grpc_tls_folders,
            grpc_tls_env=own_grpc_tls or grpc_tls_folders.environment(),  # type: ignore[union-attr]
        )

    @property
    def url(self) -> str:
        port = "" if self.public_https_port == 443 else f":{self.public_https_port}"
        return f"https://localhost{port}/"


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def connect_host(host: str) -> str:
    """Where to connect to reach a server bound to ``host`` (a wildcard bind is reached on loopback)."""
    if host in ("0.0.0.0", "", "*"):  # noqa: S104 (a comparison, not a bind)
        return "127.0.0.1"
    return "::1" if host == "::" else host


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------------
# Gateway configuration


def render_gateway_config(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``${GATEWAY_*}`` placeholder (exactly what the image's envsubst does); a missing value is
    an error rather than an empty string in the config."""
    missing = sorted({name for name in _PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise RunError(f"gateway template needs values for {', '.join(missing)}")
    for name, value in values.items():
        if "\n" in value or ";" in value or "{" in value:
            raise RunError(f"{name} must not contain newlines, ';' or braces: {value!r}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def gateway_values(
    runtime_dir: Path,
    cert: Path,
    key: Path,
    upstream_conf: Path,
    *,
    https_listen: str,
    http_listen: str,
    public_https_port: int,
    access_log: str = "/dev/stdout",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    values = {
        "GATEWAY_RUNTIME_DIR": str(runtime_dir),
        "GATEWAY_ERROR_PAGES_DIR": str(GATEWAY_DIR / "errors"),
        "GATEWAY_TLS_CERT": str(cert),
        "GATEWAY_TLS_KEY": str(key),
        "GATEWAY_UPSTREAM_CONF": str(upstream_conf),
        "GATEWAY_HTTPS_LISTEN": https_listen,
        "GATEWAY_HTTP_LISTEN": http_listen,
        "GATEWAY_PUBLIC_HTTPS_PORT": str(public_https_port),
        "GATEWAY_ACCESS_LOG": access_log,
        "GATEWAY_LOGIN_RATE": "30r/m",
        "GATEWAY_LOGIN_BURST": "20",
        "GATEWAY_MAX_BODY_SIZE": "17m",
        "GATEWAY_HSTS_MAX_AGE": "31536000",
        "GATEWAY_TRUST_REQUEST_ID": "off",
        "GATEWAY_STATIC_MAX_AGE": "1h",
        "GATEWAY_ERROR_LOG_LEVEL": "warn",
    }
    values.update(extra or {})
    return values


def write_gateway_config(runtime_dir: Path, upstreams: list[str], values: Mapping[str, str]) -> Path:
    """Render the template into ``runtime_dir`` (with its upstream list) and return the nginx.conf path."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (runtime_dir / sub).mkdir(exist_ok=True)
    upstream_conf = Path(values["GATEWAY_UPSTREAM_CONF"])
    upstream_conf.write_text("".join(f"server {address};\n" for address in upstreams))
    config = runtime_dir / "nginx.conf"
    config.write_text(render_gateway_config(GATEWAY_TEMPLATE.read_text(), values))
    return config


def nginx_command(nginx: str, config: Path, *extra: str) -> list[str]:
    # -e stderr: nginx writes its startup errors there instead of /var/log/nginx (not writable for us).
    command = [nginx, "-e", "stderr", "-p", str(config.parent), "-c", str(config)]
    if os.geteuid() == 0:
        # Started by root, nginx would run its workers as `nobody`, who cannot use the temp folders (or
        # any folder under a private /tmp) this run created. The workers keep the invoking user instead,
        # as they do for everybody else (the image runs nginx as an unprivileged user).
        command += ["-g", "user root;"]
    return [*command, *extra]


def ensure_self_signed_certificate(tls_dir: Path, console: Console | None = None) -> tuple[Path, Path]:
    """A localhost certificate under ``tls_dir`` (made with openssl; remade when it expires within a day)."""
    cert, key = tls_dir / "localhost.crt", tls_dir / "localhost.key"
    openssl = shutil.which("openssl")
    if cert.is_file() and key.is_file():
        still_valid = (
            openssl is None
            or subprocess.run(
                [openssl, "x509", "-checkend", "86400", "-noout", "-in", str(cert)], capture_output=True, check=False
            ).returncode
            == 0
        )
        if still_valid:
            return cert, key
    if openssl is None:
        raise RunError("openssl is needed to make a self-signed certificate; install it or set GATEWAY_TLS_CERT/KEY")
    tls_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "825",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RunError(f"openssl could not make a self-signed certificate:\n{result.stderr}")
    key.chmod(0o600)
    if console:
        console.say(f"made a self-signed certificate for localhost: {cert}")
    return cert, key


# ---------------------------------------------------------------------------------------------------------
# Postgres and Redis


def ensure_postgres_database(url: str) -> None:
    """Create the database named in ``url`` if it does not exist (connecting to the ``postgres`` database)."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or "postgres"
    params = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "dbname": "postgres",
        "connect_timeout": 3,
    }
    try:
        connection = psycopg2.connect(**{k: v for k, v in params.items() if v is not None})
    except psycopg2.OperationalError as error:
        raise RunError(f"cannot connect to Postgres at {params['host']}:{params['port']}: {error}".strip()) from None
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    return tcp_answers(host, port)


def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
    except redis.exceptions.RedisError as error:
        raise RunError(f"Redis at {url} answers but refuses us ({error}); set REDIS_URL") from None
    finally:
        client.close()


@dataclass(frozen=True)
class Backends:
    database_url: str
    redis_url: str
    embedded_redis_port: int | None  # set when the embedded Redis server must be started


def choose_backends(settings: RunSettings, env: Mapping[str, str], console: Console) -> Backends:
    database_url = env.get("DATABASE_URL", "").strip()
    redis_url = env.get("REDIS_URL", "").strip()
    embedded: list[str] = []
    if not database_url:
        if not settings.embedded_forced and postgres_answers():
            database_url = DEFAULT_DATABASE_URL
        else:
            settings.var_dir.mkdir(parents=True, exist_ok=True)
            database_url = f"sqlite:///{settings.var_dir / 'faceauth.sqlite3'}"
            embedded.append(f"SQLite database {settings.var_dir / 'faceauth.sqlite3'}")
    if database_url.startswith("postgresql"):
        ensure_postgres_database(database_url)
    embedded_redis_port = None
    if not redis_url:
        if not settings.embedded_forced and redis_answers(DEFAULT_REDIS_URL):
            redis_url = DEFAULT_REDIS_URL
        else:
            embedded_redis_port = free_local_port()
            redis_url = f"redis://127.0.0.1:{embedded_redis_port}/0"
            embedded.append(f"in-memory Redis-compatible server on 127.0.0.1:{embedded_redis_port}")
    if embedded:
        console.warn(EMBEDDED_WARNING.format(what="; ".join(embedded)))
    return Backends(database_url, redis_url, embedded_redis_port)


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_embedded_redis(address: str) -> int:
    """The embedded Redis (fakeredis' TCP server), run as a child process of the local run."""
    from fakeredis import TcpFakeServer

    host, port = split_address(address)
    server = TcpFakeServer((host, port), server_type="redis")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print(f"embedded Redis-compatible server (fakeredis) listening on {host}:{port}; data lives in memory", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    print("embedded Redis stopped", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------
# Child processes


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    stop_signal: int = signal.SIGTERM
    pump: threading.Thread | None = None
    expected_exit: bool = False
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    """A long-running child: how it starts and how to tell it is ready."""

    name: str
    argv: list[str]
    ready: Callable[[], bool]


class Supervisor:
    """Starts children in their own process groups, pumps their output, stops them all."""

    def __init__(self, console: Console, stop_timeout: float) -> None:
        self.console = console
        self.stop_timeout = stop_timeout
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self._stopped: dict[str, Child] = {}  # stopped one at a time with stop(name): restart(name) knows how

    def start(self, name: str, argv: list[str], env: Mapping[str, str], stop_signal: int = signal.SIGTERM) -> Child:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            # Own process group: the terminal's Ctrl-C reaches only us, and we stop each group in order.
            start_new_session=True,
        )
        child = Child(name, process, stop_signal, argv=list(argv), env=dict(env))
        child.pump = threading.Thread(target=self._pump, args=(child,), name=f"log-{name}", daemon=True)
        child.pump.start()
        self.children.append(child)
        self.console.say(f"started {name} (pid {process.pid})")
        return child

    def _pump(self, child: Child) -> None:
        assert child.process.stdout is not None
        for line in child.process.stdout:
            self.console.line(child.name, line.rstrip("\n"))

    def run_once(self, name: str, argv: list[str], env: Mapping[str, str], timeout: float) -> int:
        """Run a command to completion (its output prefixed like the others); returns its exit status."""
        child = self.start(name, argv, env)
        child.expected_exit = True
        try:
            code = child.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._stop_child(child)
            raise RunError(f"{name} did not finish within {timeout:.0f}s") from None
        if child.pump:
            child.pump.join(timeout=5)
        self.children.remove(child)
        return code

    def child(self, name: str) -> Child | None:
        """The running (supervised) child called ``name``."""
        return next((child for child in self.children if child.name == name), None)

    def stop(self, name: str) -> int:
        """Stop one child the way ``stop_all`` does (its stop signal to its process group, SIGKILL after the stop
        timeout) and stop supervising it; returns its exit status (negative: killed by that signal)."""
        child = self.child(name)
        if child is None:
            raise KeyError(f"{name} is not running")
        self.children.remove(child)
        self._stopped[name] = child
        return self._stop_child(child)

    def restart(self, name: str, env: Mapping[str, str] | None = None) -> Child:
        """Start a child again with the same command (stopping it first if it runs), with ``env`` if given, else
        the environment it had."""
        if self.child(name) is not None:
            self.stop(name)
        previous = self._stopped.pop(name, None)
        if previous is None:
            raise KeyError(f"{name} was never started")
        return self.start(name, previous.argv, previous.env if env is None else env, previous.stop_signal)

    def died(self) -> Child | None:
        """The first child that exited on its own, if any."""
        for child in self.children:
            if not child.expected_exit and child.process.poll() is not None:
                return child
        return None

    def stop_all(self) -> None:
        """Stop children in reverse start order: the gateway first, Redis last."""
        for child in reversed(self.children):
            self._stop_child(child)
        self.children.clear()

    def _stop_child(self, child: Child) -> int:
        pgid = child.process.pid
        if child.process.poll() is None:
            _signal_group(pgid, child.stop_signal)
            try:
                child.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.console.warn(f"{child.name} did not stop within {self.stop_timeout:.0f}s; killing it")
                _signal_group(pgid, signal.SIGKILL)
                child.process.wait(timeout=10)
        # Anything the child left behind in its group (workers of a crashed master, say).
        _signal_group(pgid, signal.SIGKILL)
        if child.pump:
            child.pump.join(timeout=5)
        return child.process.returncode


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


# ---------------------------------------------------------------------------------------------------------
# Readiness


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


def redis_pings(url: str) -> bool:
    try:
        return redis_answers(url)
    except RunError:
        return False


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


# ---------------------------------------------------------------------------------------------------------
# The run


def secret_key(var_dir: Path) -> str:
    """A random development secret kept under var/, so that sessions survive a restart."""
    return _kept_secret(var_dir / "secret-key", lambda: secrets.token_urlsafe(48))


def template_key(var_dir: Path) -> str:
    """A random FACEAUTH_TEMPLATE_KEY (32 bytes, base64) kept under var/: the templates enrolled in one run are
    encrypted with it and must open in the next. Lose the file and they have to be enrolled again."""
    return _kept_secret(var_dir / "template-key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


def _kept_secret(path: Path, make: Callable[[], str]) -> str:
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


def check_ports(settings: RunSettings, use_gateway: bool) -> None:
    wanted = [
        ("LIVENESS_LISTEN", *split_address(settings.liveness_listen)),
        ("RECOGNITION_LISTEN", *split_address(settings.recognition_listen)),
        ("AUTH_WEB_LISTEN", *split_address(settings.auth_web_listen)),
    ]
    if use_gateway:
        wanted += [
            ("GATEWAY_HTTPS_PORT", settings.bind_address, settings.https_port),
            ("GATEWAY_HTTP_PORT", settings.bind_address, settings.http_port),
        ]
    busy = [f"{host}:{port} ({variable})" for variable, host, port in wanted if not port_is_free(host, port)]
    if busy:
        raise RunError(
            f"already in use: {', '.join(busy)}. Is another `make run` still running? Stop it or set the variables."
        )


def listen_spec(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def service_target(listen: str) -> str:
    """The gRPC target that reaches a service listening on ``listen`` (a wildcard bind is reached on loopback)."""
    host, port = split_address(listen)
    return listen_spec(connect_host(host), port)


def auth_web_url(settings: RunSettings) -> str:
    """auth-web itself (not through the gateway), e.g. ``http://127.0.0.1:8000``."""
    host, port = split_address(settings.auth_web_listen)
    return f"http://{listen_spec(connect_host(host), port)}"


def child_environment(
    env: Mapping[str, str], settings: RunSettings, *, database_url: str, redis_url: str, use_gateway: bool
) -> dict[str, str]:
    """What every child gets: ``env`` plus the backends, each service's address and where to reach the others,
    development mode, a secret key and a template key unless ``env`` sets them."""
    child_env = {
        **env,
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LIVENESS_LISTEN": settings.liveness_listen,
        "RECOGNITION_LISTEN": settings.recognition_listen,
        "AUTH_WEB_LISTEN": settings.auth_web_listen,
        "LIVENESS_TARGET": env.get("LIVENESS_TARGET") or service_target(settings.liveness_listen),
        "RECOGNITION_TARGET": env.get("RECOGNITION_TARGET") or service_target(settings.recognition_listen),
        "FACEAUTH_ENV": env.get("FACEAUTH_ENV") or "development",
        "FACEAUTH_SECRET_KEY": env.get("FACEAUTH_SECRET_KEY") or secret_key(settings.var_dir),
        "FACEAUTH_TEMPLATE_KEY": env.get("FACEAUTH_TEMPLATE_KEY") or template_key(settings.var_dir),
        **settings.grpc_tls_env,
    }
    if use_gateway:
        # auth-web sits behind exactly one proxy (the gateway): trust its X-Forwarded-For/-Proto.
        child_env.setdefault("AUTH_PROXY_COUNT", "1")
    return child_env


def service_commands(settings: RunSettings, python: str = sys.executable) -> list[Service]:
    """liveness, recognition and auth-web, in start order, each with its readiness probe (gRPC health SERVING,
    auth-web's /healthz)."""
    liveness, recognition = settings.liveness_listen, settings.recognition_listen
    healthz = f"{auth_web_url(settings)}/healthz"
    return [
        Service("liveness", [python, "-m", "liveness_service"], lambda: grpc_serving(liveness, settings)),
        Service("recognition", [python, "-m", "recognition_service"], lambda: grpc_serving(recognition, settings)),
        Service("auth-web", [python, "-m", "auth_web", "serve"], lambda: http_status(healthz) == 200),
    ]


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
    console.say(f"database: {_redact(backends.database_url)}")
    console.say(f"redis: {_redact(backends.redis_url)}")

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
            supervisor.start("redis", [python, str(Path(__file__).resolve()), "--embedded-redis",
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
        wait_until_ready(supervisor, checks, settings.ready_timeout, started)
        if supervisor.stopping.is_set():
            return 0

        url = settings.url if use_gateway else f"http://localhost:{split_address(settings.auth_web_listen)[1]}/"
        banner = f"faceauth is running at {url}"
        console.say("=" * len(banner))
        console.say(banner)
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


# A child that dies after the stack was ready is started again; this many deaths within the window are a crash
# loop (a broken model, a port taken), which stops the run with the child's status.
MAX_RESTARTS = 3
RESTART_WINDOW_SECONDS = 60.0


def restart_crashed(supervisor: Supervisor, dead: Child, crashes: list[float]) -> None:
    """Start ``dead`` again, unless it is crashing in a loop (then RunError). ``crashes``: earlier death times."""
    now = time.monotonic()
    crashes[:] = [moment for moment in crashes if now - moment <= RESTART_WINDOW_SECONDS]
    code = dead.process.returncode
    if len(crashes) >= MAX_RESTARTS:
        raise RunError(
            f"{dead.name} exited unexpectedly with status {code}, "
            f"{len(crashes) + 1} times in {RESTART_WINDOW_SECONDS:.0f}s; not restarting it"
        )
    crashes.append(now)
    supervisor.console.warn(f"{dead.name} exited unexpectedly with status {code}; restarting it")
    supervisor.restart(dead.name)


def prepare_grpc_tls(settings: RunSettings, console: Console | None = None) -> None:
    """Make (first run) or renew the run's CA and gRPC certificates under var/grpc-tls/, valid for the names
    auth-web uses to reach each service."""
    if settings.grpc_tls_folders is None:
        return
    liveness = split_address(service_target(settings.liveness_listen))[0]
    recognition = split_address(service_target(settings.recognition_listen))[0]
    issued = ensure_certificates(settings.grpc_tls_folders, server_hosts([liveness]), server_hosts([recognition]))
    if issued and console:
        console.say(f"made the gRPC mutual TLS certificates under {settings.grpc_tls_folders.ca_dir.parent}")


def prepare_gateway(settings: RunSettings, console: Console) -> Path:
    runtime_dir = settings.var_dir / "gateway"
    if settings.tls_cert and settings.tls_key:
        for path in (settings.tls_cert, settings.tls_key):
            if not os.access(path, os.R_OK):
                raise RunError(f"cannot read {path} (GATEWAY_TLS_CERT / GATEWAY_TLS_KEY)")
        cert, key = settings.tls_cert, settings.tls_key
    else:
        cert, key = ensure_self_signed_certificate(runtime_dir / "tls", console)
    auth_host, auth_port = split_address(settings.auth_web_listen)
    values = gateway_values(
        runtime_dir,
        cert,
        key,
        runtime_dir / "upstream.conf",
        https_listen=listen_spec(settings.bind_address, settings.https_port),
        http_listen=listen_spec(settings.bind_address, settings.http_port),
        public_https_port=settings.public_https_port,
        extra=settings.gateway_values,
    )
    return write_gateway_config(runtime_dir, [listen_spec(connect_host(auth_host), auth_port)], values)


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV_DIR.resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedded-redis", metavar="HOST:PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.embedded_redis:
        return serve_embedded_redis(args.embedded_redis)
    if not in_venv():
        # Run directly (not through `make run`): set up the venv if needed, then continue inside it.
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "setup.sh")], check=True)
        python = str(VENV_DIR / "bin" / "python")
        arguments = [python, str(Path(__file__).resolve()), *(argv or sys.argv[1:])]
        os.execv(python, arguments)  # noqa: S606 (re-run this script inside the venv)
    console = Console()
    try:
        return run(os.environ, console)
    except RunError as error:
        console.line("run", f"ERROR: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
