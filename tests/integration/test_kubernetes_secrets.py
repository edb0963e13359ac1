"""The gRPC certificates deploy/kubernetes/make_secrets.py puts into the Secrets work as the manifests use them: a
model service started with its Secret's files answers auth-web's Secret identity by the headless Service's name
(``recognition``), and refuses a peer without the client certificate or a name its certificate does not carry."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import free_port, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE = "faceauth.recognition.v1.RecognitionService"


def secrets_files(tmp_path: Path) -> dict[str, Path]:
    """Run make_secrets.py (dev) and write each Secret's keys to files, as a Secret volume mounts them."""
    certificate, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    certificate.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "deploy/kubernetes/make_secrets.py"), "--namespace", "faceauth-dev", "--dev",
         "--gateway-cert", str(certificate), "--gateway-key", str(key), "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    folders = {}
    for secret in yaml.safe_load_all(result.stdout):
        folder = tmp_path / "mounts" / secret["metadata"]["name"]
        folder.mkdir(parents=True)
        for name, value in secret["data"].items():
            (folder / name).write_bytes(base64.b64decode(value))
        folders[secret["metadata"]["name"]] = folder
    return folders


def health(port: int, name: str, ca: bytes, cert: bytes | None, key: bytes | None) -> grpc.StatusCode | str:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    options = [("grpc.ssl_target_name_override", name), ("grpc.default_authority", name)]
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        try:
            request = health_pb2.HealthCheckRequest(service=SERVICE)
            answer = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[attr-defined,no-any-return]
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


@pytest.fixture
def recognition(tmp_path: Path):  # type: ignore[no-untyped-def]
    mounts = secrets_files(tmp_path)
    own = mounts["faceauth-grpc-recognition"]
    port = free_port()
    env = {
        **os.environ,
        "GRPC_INSECURE": "",
        "FACEAUTH_ENV": "production",
        "RECOGNITION_LISTEN": f"127.0.0.1:{port}",
        "RECOGNITION_METRICS_LISTEN": "off",
        "GRPC_TLS_CA": str(own / "ca.crt"),
        "RECOGNITION_TLS_CERT": str(own / "server.crt"),
        "RECOGNITION_TLS_KEY": str(own / "server.key"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "recognition_service"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield port, mounts
    finally:
        stop_process(process)


def test_the_secrets_certificates_carry_the_manifests_names(recognition, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port, mounts = recognition
    client = mounts["faceauth-grpc-auth-web"]
    ca, cert, key = ((client / f).read_bytes() for f in ("ca.crt", "client.crt", "client.key"))
    deadline = time.monotonic() + 120
    while (status := health(port, "recognition", ca, cert, key)) != "SERVING":
        assert time.monotonic() < deadline, f"never SERVING by the headless Service's name: {status}"
        time.sleep(0.5)
    # The FQDN forms and the probe's loopback name verify too; the other service's name does not.
    assert health(port, "recognition.faceauth-dev.svc.cluster.local", ca, cert, key) == "SERVING"
    assert health(port, "127.0.0.1", ca, cert, key) == "SERVING"
    assert health(port, "liveness", ca, cert, key) == grpc.StatusCode.UNAVAILABLE
    # No client certificate, or one from another CA: refused.
    assert health(port, "recognition", ca, None, None) == grpc.StatusCode.UNAVAILABLE
    (tmp_path / "other").mkdir()
    other = secrets_files(tmp_path / "other")["faceauth-grpc-auth-web"]  # a second installation's CA
    foreign = ((other / "client.crt").read_bytes(), (other / "client.key").read_bytes())
    assert health(port, "recognition", ca, *foreign) == grpc.StatusCode.UNAVAILABLE
    # The pod's own probe identity (client.crt in the service's Secret) is accepted, as the probes need.
    own = mounts["faceauth-grpc-recognition"]
    probe = ((own / "client.crt").read_bytes(), (own / "client.key").read_bytes())
    assert health(port, "127.0.0.1", (own / "ca.crt").read_bytes(), *probe) == "SERVING"
