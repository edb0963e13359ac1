"""What the local run reads from the environment: one frozen ``RunSettings`` (docs/configuration.md, "gateway
and local run"), and ``RunError``, the problem a user can fix, printed as one clear message."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from faceauth_common.grpc_server import MAX_WORKERS, worker_addresses, worker_ports_problem
from faceauth_common.settings import SettingsError, env_int
from faceauth_common.tls import TLS_VARIABLES, ServiceFolders

REPO_ROOT = Path(__file__).resolve().parent.parent

# The gateway's tunables and their defaults (the same as gateway/docker-entrypoint.sh's).
GATEWAY_DEFAULTS = {
    "GATEWAY_LOGIN_RATE": "30r/m",
    "GATEWAY_LOGIN_BURST": "20",
    "GATEWAY_MAX_BODY_SIZE": "25m",
    "GATEWAY_HSTS_MAX_AGE": "31536000",
    "GATEWAY_TRUST_REQUEST_ID": "off",
    "GATEWAY_STATIC_MAX_AGE": "1h",
    "GATEWAY_ERROR_LOG_LEVEL": "warn",
}


# Where the local run puts each worker's own port when a model service runs several workers (worker k: this + k),
# unless {PREFIX}_WORKER_PORTS_FROM says otherwise; auth-web's target is then the list of those ports.
LOCAL_WORKER_PORTS_FROM = {"LIVENESS": 50061, "RECOGNITION": 50071}


class RunError(Exception):
    """A problem the user can fix; printed as one clear message."""


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
    # Worker processes of each model service, and the first of their own ports (0: none, only the shared port).
    liveness_workers: int = 1
    recognition_workers: int = 1
    liveness_worker_ports_from: int = 0
    recognition_worker_ports_from: int = 0

    @property
    def liveness_worker_addresses(self) -> list[str]:
        """Each liveness worker's own address; empty when the workers share only ``liveness_listen``."""
        return worker_addresses(self.liveness_listen, self.liveness_workers, self.liveness_worker_ports_from)

    @property
    def recognition_worker_addresses(self) -> list[str]:
        return worker_addresses(self.recognition_listen, self.recognition_workers, self.recognition_worker_ports_from)

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
        listens = {
            "LIVENESS": env.get("LIVENESS_LISTEN", "").strip() or "127.0.0.1:50051",
            "RECOGNITION": env.get("RECOGNITION_LISTEN", "").strip() or "127.0.0.1:50052",
        }
        workers = {prefix: env_int(f"{prefix}_WORKERS", 1, env, minimum=1, maximum=MAX_WORKERS) for prefix in listens}
        worker_ports = {prefix: _worker_ports_from(env, prefix, listens[prefix], workers[prefix]) for prefix in listens}
        grpc_tls_folders = None if own_grpc_tls else ServiceFolders.under(var_dir / "grpc-tls")
        return cls(
            var_dir=var_dir,
            bind_address=env.get("GATEWAY_BIND", "").strip() or "127.0.0.1",
            https_port=https_port,
            http_port=port("GATEWAY_HTTP_PORT", 8080),
            public_https_port=port("GATEWAY_PUBLIC_HTTPS_PORT", https_port),
            tls_cert=Path(cert).resolve() if cert else None,
            tls_key=Path(key).resolve() if key else None,
            liveness_listen=listens["LIVENESS"],
            recognition_listen=listens["RECOGNITION"],
            auth_web_listen=env.get("AUTH_WEB_LISTEN", "").strip() or "127.0.0.1:8000",
            embedded_forced=env.get("FACEAUTH_EMBEDDED", "").strip().lower() in ("1", "true", "yes", "on"),
            ready_timeout=float(env_int("FACEAUTH_READY_TIMEOUT", 300, env, minimum=1)),
            stop_timeout=float(env_int("FACEAUTH_STOP_TIMEOUT", 20, env, minimum=1)),
            nginx=nginx,
            gateway_values={name: env.get(name, "").strip() or default for name, default in GATEWAY_DEFAULTS.items()},
            grpc_tls_folders=grpc_tls_folders,
            grpc_tls_env=own_grpc_tls or grpc_tls_folders.environment(),  # type: ignore[union-attr]
            liveness_workers=workers["LIVENESS"],
            recognition_workers=workers["RECOGNITION"],
            liveness_worker_ports_from=worker_ports["LIVENESS"],
            recognition_worker_ports_from=worker_ports["RECOGNITION"],
        )

    @property
    def url(self) -> str:
        port = "" if self.public_https_port == 443 else f":{self.public_https_port}"
        return f"https://localhost{port}/"


def _worker_ports_from(env: Mapping[str, str], prefix: str, listen: str, workers: int) -> int:
    """``{prefix}_WORKER_PORTS_FROM`` when set (``0``: off), else the local default for several workers: SO_REUSEPORT
    alone splits auth-web's few connections unevenly over them, their own ports let it balance call by call."""
    name = f"{prefix}_WORKER_PORTS_FROM"
    default = LOCAL_WORKER_PORTS_FROM[prefix] if workers > 1 else 0
    first = env_int(name, default, env, minimum=0, maximum=65535)
    problem = worker_ports_problem(listen, workers, first)
    if problem:
        raise RunError(f"{name}={first}: {problem}; set {name} to another free range")
    return first
