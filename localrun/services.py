"""The three services the local run starts (liveness, recognition, auth-web): their commands and readiness
probes (``service_commands``) and the environment every child gets (``child_environment``), development
secrets kept under ``var/`` included."""

from __future__ import annotations

import base64
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from localrun.network import connect_host, grpc_target, listen_spec, split_address
from localrun.readiness import grpc_serving, http_status
from localrun.settings import RunSettings


@dataclass(frozen=True)
class Service:
    """A long-running child: how it starts and how to tell it is ready."""

    name: str
    argv: list[str]
    ready: Callable[[], bool]


def service_commands(settings: RunSettings, python: str = sys.executable) -> list[Service]:
    """liveness, recognition and auth-web, in start order, each with its readiness probe (gRPC health SERVING,
    auth-web's /healthz). A model service with workers on their own ports is ready when the shared port and
    every worker's own port answer SERVING: auth-web calls each worker, and each loads its model on its own."""
    liveness = [settings.liveness_listen, *settings.liveness_worker_addresses]
    recognition = [settings.recognition_listen, *settings.recognition_worker_addresses]
    healthz = f"{auth_web_url(settings)}/healthz"
    return [
        Service("liveness", [python, "-m", "liveness_service"], lambda: _all_serving(liveness, settings)),
        Service("recognition", [python, "-m", "recognition_service"], lambda: _all_serving(recognition, settings)),
        Service("auth-web", [python, "-m", "auth_web", "serve"], lambda: http_status(healthz) == 200),
    ]


def _all_serving(addresses: list[str], settings: RunSettings) -> bool:
    return all(grpc_serving(address, settings) for address in addresses)


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
        # Several workers each on their own port: auth-web's target lists them (exact round-robin over workers).
        "LIVENESS_WORKER_PORTS_FROM": str(settings.liveness_worker_ports_from),
        "RECOGNITION_WORKER_PORTS_FROM": str(settings.recognition_worker_ports_from),
        "LIVENESS_TARGET": env.get("LIVENESS_TARGET")
        or grpc_target(settings.liveness_listen, settings.liveness_worker_addresses),
        "RECOGNITION_TARGET": env.get("RECOGNITION_TARGET")
        or grpc_target(settings.recognition_listen, settings.recognition_worker_addresses),
        "FACEAUTH_ENV": env.get("FACEAUTH_ENV") or "development",
        "FACEAUTH_SECRET_KEY": env.get("FACEAUTH_SECRET_KEY") or secret_key(settings.var_dir),
        "FACEAUTH_TEMPLATE_KEY": env.get("FACEAUTH_TEMPLATE_KEY") or template_key(settings.var_dir),
        # The OpenID Connect issuer: the URL the browser uses (the gateway's, or auth-web's own without nginx).
        "AUTH_OIDC_ISSUER": env.get("AUTH_OIDC_ISSUER")
        or (
            settings.url.rstrip("/")
            if use_gateway
            else f"http://localhost:{split_address(settings.auth_web_listen)[1]}"
        ),
        **settings.grpc_tls_env,
    }
    if use_gateway:
        # auth-web sits behind exactly one proxy (the gateway): trust its X-Forwarded-For/-Proto.
        child_env.setdefault("AUTH_PROXY_COUNT", "1")
    return child_env


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
