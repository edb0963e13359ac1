"""The demo relying party (examples/demo-app) as an extra process of the local run: its client registered at
faceauth (``python -m auth_web client create --replace``, the secret kept under var/), its environment, its command
and readiness probe. ``LOCALRUN_DEMO_APP=false`` leaves it out; ``DEMO_LISTEN`` moves it (default 127.0.0.1:8090)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from localrun.network import connect_host, listen_spec, port_is_free, split_address
from localrun.readiness import http_status
from localrun.settings import REPO_ROOT, RunError, RunSettings

CLIENT_ID = "demo-app"
DEMO_DIR = REPO_ROOT / "examples" / "demo-app"
DEFAULT_LISTEN = "127.0.0.1:8090"


@dataclass(frozen=True)
class DemoApp:
    url: str  # what the browser opens
    register: list[str]  # registers (or re-registers) its client at faceauth
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]


def enabled(env: Mapping[str, str]) -> bool:
    return env.get("LOCALRUN_DEMO_APP", "true").strip().lower() not in ("0", "false", "no", "off")


def demo_app(
    settings: RunSettings, env: Mapping[str, str], child_env: Mapping[str, str], python: str = sys.executable
) -> DemoApp:
    listen = env.get("DEMO_LISTEN", DEFAULT_LISTEN)
    host, port = split_address(listen)
    if not port_is_free(host, port):
        raise RunError(f"already in use: {listen} (DEMO_LISTEN, the demo app); set another or LOCALRUN_DEMO_APP=false")
    url = f"http://localhost:{port}"
    secret_file = _client_secret(settings.var_dir)
    register = [
        python, "-m", "auth_web", "client", "create", "--replace", "--client-id", CLIENT_ID, "--name", "Demo app",
        "--redirect-uri", f"{url}/callback", "--post-logout-redirect-uri", f"{url}/",
        "--secret-file", str(secret_file),
    ]  # fmt: skip
    issuer = child_env["AUTH_OIDC_ISSUER"]
    demo_env = {
        **child_env,
        "PYTHONPATH": str(DEMO_DIR) + (":" + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else ""),
        "DEMO_ISSUER": issuer,
        "DEMO_CLIENT_ID": CLIENT_ID,
        "DEMO_CLIENT_SECRET": secret_file.read_text().strip(),
        "DEMO_LISTEN": listen,
        "DEMO_PUBLIC_URL": url,
    }
    cert = settings.tls_cert or settings.var_dir / "gateway" / "tls" / "localhost.crt"
    if issuer.startswith("https://") and Path(cert).is_file():
        demo_env["DEMO_CA_BUNDLE"] = str(cert)  # the gateway's (self-signed) certificate
    probe = f"http://{listen_spec(connect_host(host), port)}/"
    return DemoApp(url, register, [python, "-m", "demo_app"], demo_env, lambda: http_status(probe) == 200)


def _client_secret(var_dir: Path) -> Path:
    path = var_dir / "demo-app-client-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path
