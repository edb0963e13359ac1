"""A grpc.health.v1 probe: ``python -m faceauth_common.healthcheck HOST:PORT [SERVICE]``.

Exits 0 when the service reports SERVING, 1 otherwise (NOT_SERVING, unknown service, no answer), with
one line saying which on stdout/stderr. docker-compose healthchecks and the local run command use it;
``SERVICE`` defaults to ``""``, the server's overall status. The probe is a gRPC client like any other:
mutual TLS from ``GRPC_TLS_CA``, ``GRPC_CLIENT_TLS_CERT`` and ``GRPC_CLIENT_TLS_KEY`` (or ``GRPC_INSECURE``),
with the server's host name checked against ``HOST``.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faceauth_common.settings import SettingsError
from faceauth_common.tls import GrpcSecurity


class HealthCheckError(Exception):
    """The service could not be asked (unreachable, deadline exceeded, unknown service name)."""


def check_health(target: str, security: GrpcSecurity, service: str = "", timeout: float = 3.0) -> str:
    """Return the serving status name (``"SERVING"``, ``"NOT_SERVING"``, ...) of ``service`` at ``target``.

    Raises HealthCheckError when the server cannot answer within ``timeout`` seconds (a refused TLS
    handshake included: it shows as UNAVAILABLE).
    """
    credentials = security.channel_credentials()
    channel = grpc.insecure_channel(target) if credentials is None else grpc.secure_channel(target, credentials)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout, wait_for_ready=False)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            name = code.name if code is not None else "UNKNOWN"
            raise HealthCheckError(f"{target}: {name}") from error
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faceauth_common.healthcheck",
        description="Exit 0 if the gRPC service at HOST:PORT reports SERVING through grpc.health.v1.",
    )
    parser.add_argument("target", metavar="HOST:PORT")
    parser.add_argument("service", nargs="?", default="", help='service name to ask about (default "": the server)')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)")
    args = parser.parse_args(argv)
    try:
        security = GrpcSecurity.client_from_env()
        security.require()
    except SettingsError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    try:
        status = check_health(args.target, security, args.service, args.timeout)
    except HealthCheckError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    if status != "SERVING":
        print(f"unhealthy: {args.target} {args.service or '(server)'} is {status}", file=sys.stderr)
        return 1
    print("SERVING")
    return 0


if __name__ == "__main__":
    sys.exit(main())
