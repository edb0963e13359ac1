"""The local run's certificates: the gateway's self-signed localhost certificate (openssl), and the private CA
with the gRPC mutual TLS certificates under ``var/grpc-tls/`` (``faceauth_common.tls``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from faceauth_common.tls import ensure_certificates, server_hosts
from localrun.network import service_target, split_address
from localrun.settings import RunError, RunSettings
from localrun.supervisor import Console


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
