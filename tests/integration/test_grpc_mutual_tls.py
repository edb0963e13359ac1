"""Mutual TLS between auth-web and the model services, attacked: who can talk to a faceauth gRPC server and
whom a faceauth client agrees to talk to.

The real recognition service (``python -m recognition_service``, the common server bootstrap) is started
once with the session's certificates; its health service answers from the moment it listens, so no
attack here waits for the model. An impostor server (a certificate from another CA, or for another name)
runs in-process with the same credentials code the bootstrap uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from conftest import GrpcTls, free_port, stop_process
from faceauth.recognition.v1 import recognition_pb2, recognition_pb2_grpc
from faceauth_common import tls
from faceauth_common.grpc_client import open_channel
from faceauth_common.healthcheck import HealthCheckError, check_health
from faceauth_common.tls import GrpcSecurity, ServiceFolders

RECOGNITION = "faceauth.recognition.v1.RecognitionService"


@pytest.fixture(scope="module")
def recognition(grpc_tls: GrpcTls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real service with mutual TLS; its address."""
    address = f"127.0.0.1:{free_port()}"
    log_path = tmp_path_factory.mktemp("mtls") / "recognition.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "recognition_service"],
            env={**os.environ, **grpc_tls.env, "RECOGNITION_LISTEN": address, "RECOGNITION_METRICS_LISTEN": "off"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_listening(address, grpc_tls.client, process)
            yield address
        finally:
            stop_process(process)


def _wait_listening(address: str, security: GrpcSecurity, process: subprocess.Popen, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"recognition_service exited with {process.returncode}"
        try:
            check_health(address, security, timeout=1)  # NOT_SERVING while the model loads is an answer too
            return
        except HealthCheckError:
            time.sleep(0.2)
    raise AssertionError(f"{address} never answered over mutual TLS")


def health_code(address: str, credentials: grpc.ChannelCredentials | None, **options: str) -> grpc.StatusCode:
    channel_options = list(options.items())
    channel = (
        grpc.insecure_channel(address, options=channel_options)
        if credentials is None
        else grpc.secure_channel(address, credentials, options=channel_options)
    )
    with channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=RECOGNITION), timeout=5)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK


def credentials(ca: Path, cert: Path | None = None, key: Path | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> ServiceFolders:
    """A complete second CA with its own certificates for the same names: what an attacker can make."""
    folders = ServiceFolders.under(tmp_path_factory.mktemp("rogue-ca"))
    tls.ensure_certificates(folders, tls.server_hosts([]), tls.server_hosts([]))
    return folders


# ---- who may call a server ---------------------------------------------------------------------------------


def test_the_happy_path_auth_web_identity_gets_answers(recognition: str, grpc_tls: GrpcTls) -> None:
    folders = grpc_tls.folders
    ca, cert, key = folders.auth_web / "ca.crt", folders.auth_web / "client.crt", folders.auth_web / "client.key"
    assert health_code(recognition, credentials(ca, cert, key)) == grpc.StatusCode.OK
    # And the auth-web channel pool, by DNS name (dns:///localhost:PORT), as in production.
    port = recognition.rsplit(":", 1)[1]
    with open_channel(f"localhost:{port}", grpc_tls.client, connections=2) as pool:
        for _ in range(4):
            stub = health_pb2_grpc.HealthStub(pool)
            stub.Check(health_pb2.HealthCheckRequest(service=RECOGNITION), timeout=5, wait_for_ready=True)


def test_a_plaintext_client_is_refused(recognition: str) -> None:
    assert health_code(recognition, None) == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_cannot_reach_the_model_methods(recognition: str) -> None:
    """Not just health: the oracle methods the issue named (Encode returns any photo's embedding)."""
    with grpc.insecure_channel(recognition) as channel:
        stub = recognition_pb2_grpc.RecognitionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Encode(recognition_pb2.EncodeRequest(images=[b"\xff\xd8"]), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_a_tls_client_without_a_client_certificate_is_refused(recognition: str, grpc_tls: GrpcTls) -> None:
    # Trusts the right CA, verifies the server, but has no certificate of its own.
    assert health_code(recognition, credentials(grpc_tls.folders.auth_web / "ca.crt")) == grpc.StatusCode.UNAVAILABLE


def test_a_client_certificate_from_another_ca_is_refused(
    recognition: str, grpc_tls: GrpcTls, rogue: ServiceFolders
) -> None:
    # The attacker trusts our CA (the certificate is public) but can only sign their own client certificate.
    forged = credentials(
        grpc_tls.folders.auth_web / "ca.crt", rogue.auth_web / "client.crt", rogue.auth_web / "client.key"
    )
    assert health_code(recognition, forged) == grpc.StatusCode.UNAVAILABLE


# ---- whom a client agrees to talk to -----------------------------------------------------------------------


def _impostor(server_credentials: grpc.ServerCredentials) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set(RECOGNITION, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials)
    server.start()
    return server, f"127.0.0.1:{port}"


def test_a_server_with_a_certificate_from_another_ca_is_refused_by_our_client(
    grpc_tls: GrpcTls, rogue: ServiceFolders
) -> None:
    # The impostor even accepts our client certificate (it trusts our CA): only the server check stops us.
    folders = rogue.recognition
    server, address = _impostor(
        grpc.ssl_server_credentials(
            [((folders / "server.key").read_bytes(), (folders / "server.crt").read_bytes())],
            root_certificates=(grpc_tls.folders.ca_dir / "ca.crt").read_bytes(),
            require_client_auth=True,
        )
    )
    try:
        with pytest.raises(HealthCheckError, match="UNAVAILABLE"):
            check_health(address, grpc_tls.client, RECOGNITION, timeout=5)
    finally:
        server.stop(0)


def test_a_server_certificate_for_another_name_is_refused(grpc_tls: GrpcTls, tmp_path: Path) -> None:
    # A genuine certificate of our CA, but for "liveness-service" only: reached as 127.0.0.1 / localhost,
    # the client refuses it (hostname verification is on).
    authority = tls.load_or_make_authority(grpc_tls.folders.ca_dir)
    only_named = tmp_path / "server.crt"
    tls.ensure_certificate(authority, tls.Identity("liveness", server=True, hosts=("liveness-service",)), only_named)
    env = {
        **grpc_tls.env,
        "LIVENESS_TLS_CERT": str(only_named),
        "LIVENESS_TLS_KEY": str(only_named.with_suffix(".key")),
    }
    server, address = _impostor(
        GrpcSecurity.from_env("LIVENESS_TLS_CERT", "LIVENESS_TLS_KEY", env).server_credentials()
    )
    port = address.rsplit(":", 1)[1]
    try:
        for target in (address, f"localhost:{port}"):
            with pytest.raises(HealthCheckError, match="UNAVAILABLE"):
                check_health(target, grpc_tls.client, RECOGNITION, timeout=5)
        # The same server, asked for by the name its certificate carries, is accepted: the name decided.
        client = grpc_tls.client.channel_credentials()
        assert (
            health_code(address, client, **{"grpc.ssl_target_name_override": "liveness-service"}) == grpc.StatusCode.OK
        )
    finally:
        server.stop(0)


# ---- the settings --------------------------------------------------------------------------------------------


def test_a_service_without_tls_settings_refuses_to_start(grpc_tls: GrpcTls) -> None:
    env = {k: v for k, v in os.environ.items() if k not in tls.TLS_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-m", "recognition_service"],
        env={**env, "RECOGNITION_LISTEN": f"127.0.0.1:{free_port()}", "RECOGNITION_METRICS_LISTEN": "off"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "tls_not_configured" in result.stdout + result.stderr
    assert "GRPC_INSECURE" in result.stdout + result.stderr


def test_a_service_refuses_plaintext_in_production() -> None:
    env = {k: v for k, v in os.environ.items() if k not in tls.TLS_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-m", "recognition_service"],
        env={**env, "GRPC_INSECURE": "true", "FACEAUTH_ENV": "production", "RECOGNITION_METRICS_LISTEN": "off"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "GRPC_INSECURE=true is refused in production" in result.stderr
