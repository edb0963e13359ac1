"""Addresses and ports: ``HOST:PORT`` parsing, where to connect to reach a bind address, and whether a port is
free or answers."""

from __future__ import annotations

import ipaddress
import socket

from localrun.settings import RunError, RunSettings


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


def listen_spec(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def service_target(listen: str) -> str:
    """The gRPC target that reaches a service listening on ``listen`` (a wildcard bind is reached on loopback)."""
    host, port = split_address(listen)
    return listen_spec(connect_host(host), port)


def grpc_target(listen: str, worker_addresses: list[str]) -> str:
    """auth-web's target for a model service on ``listen``: the list of its workers' own addresses
    (``127.0.0.1:p1,127.0.0.1:p2``: round_robin balances call by call over the workers) when they have them,
    else the shared port."""
    if not worker_addresses:
        return service_target(listen)
    targets = [service_target(address) for address in worker_addresses]
    host = split_address(targets[0])[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise RunError(
            f"a service with workers on their own ports must listen on an IP address (auth-web gets the list of "
            f"the ports, which names one IP), not {host!r}: set its _LISTEN to an IP or its _WORKER_PORTS_FROM=0"
        ) from None
    return ",".join(targets)


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


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_ports(settings: RunSettings, use_gateway: bool) -> None:
    wanted = [
        ("LIVENESS_LISTEN", *split_address(settings.liveness_listen)),
        ("RECOGNITION_LISTEN", *split_address(settings.recognition_listen)),
        ("AUTH_WEB_LISTEN", *split_address(settings.auth_web_listen)),
        *(("LIVENESS_WORKER_PORTS_FROM", *split_address(a)) for a in settings.liveness_worker_addresses),
        *(("RECOGNITION_WORKER_PORTS_FROM", *split_address(a)) for a in settings.recognition_worker_addresses),
    ]
    if use_gateway:
        wanted += [
            ("GATEWAY_HTTPS_PORT", settings.bind_address, settings.https_port),
            ("GATEWAY_HTTP_PORT", settings.bind_address, settings.http_port),
        ]
    claimed: dict[int, str] = {}
    for variable, _host, port in wanted:
        if port in claimed and claimed[port] != variable:
            raise RunError(f"port {port} is wanted by both {claimed[port]} and {variable}: set one of them to another")
        claimed[port] = variable
    busy = [f"{host}:{port} ({variable})" for variable, host, port in wanted if not port_is_free(host, port)]
    if busy:
        raise RunError(
            f"already in use: {', '.join(busy)}. Is another `make run` still running? Stop it or set the variables."
        )
