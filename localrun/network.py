"""Addresses and ports: ``HOST:PORT`` parsing, where to connect to reach a bind address, and whether a port is
free or answers."""

from __future__ import annotations

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
