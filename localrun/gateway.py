"""The nginx gateway of the local run: ``gateway/nginx.conf.template`` rendered into ``var/gateway/`` (the same
placeholders the image's entrypoint fills with envsubst), and the nginx command line that runs it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from localrun.certificates import ensure_self_signed_certificate
from localrun.network import connect_host, listen_spec, split_address
from localrun.settings import GATEWAY_DEFAULTS, REPO_ROOT, RunError, RunSettings
from localrun.supervisor import Console

GATEWAY_DIR = REPO_ROOT / "gateway"
GATEWAY_TEMPLATE = GATEWAY_DIR / "nginx.conf.template"
_PLACEHOLDER = re.compile(r"\$\{(GATEWAY_[A-Z0-9_]+)\}")


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
        **GATEWAY_DEFAULTS,
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


def prepare_gateway(settings: RunSettings, console: Console) -> Path:
    """The gateway's certificate (the configured pair, else a self-signed one) and its rendered config under
    ``var/gateway/``; returns the nginx.conf path."""
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
