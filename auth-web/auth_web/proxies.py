"""Which peers may speak for a client: the trusted proxies (X-Forwarded-*) and the internal callers (/readyz).

Werkzeug's ProxyFix trusts the forwarded headers of *any* peer; ``TrustedProxyFix`` applies it only when the
connection comes from a trusted proxy's address, so a client that reaches auth-web directly cannot choose the
address that rate limits, lockouts and the audit log see.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: WSGI environ key set to True when the request came through a trusted proxy (its headers were applied).
TRUSTED_PROXY_ENVIRON_KEY = "faceauth.trusted_proxy"
#: The connection's own peer address, before ProxyFix replaced REMOTE_ADDR with the forwarded one.
PEER_ADDRESS_ENVIRON_KEY = "faceauth.peer_address"

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*$")
_RESOLVE_EVERY_SECONDS = 30.0
# A listed name that resolved to nothing (the gateway's container not started yet) is asked again this soon.
_RETRY_UNRESOLVED_SECONDS = 1.0


def parse_address_list(entries: Iterable[str]) -> tuple[list[IPNetwork], list[str]]:
    """IP addresses / CIDR networks, and host names; raises ValueError naming a malformed entry."""
    networks: list[IPNetwork] = []
    hostnames: list[str] = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if not _HOSTNAME.fullmatch(entry) or entry.replace(".", "").isdigit():
                raise ValueError(f"not an IP address, network or host name: {entry!r}") from None
            hostnames.append(entry.lower())
    return networks, hostnames


class AddressMatcher:
    """``address in matcher``: the address is one of the listed IPs/networks, or what a listed host resolves to.

    Host names (e.g. the compose service ``gateway``, whose address changes with each container) are resolved
    lazily and at most every 30 s; a name that does not resolve matches nothing until it does, and is asked again
    after 1 s (not 30: auth-web's own health checks run before the gateway's container exists).
    """

    def __init__(
        self,
        entries: Iterable[str],
        resolve: Callable[[str], list[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.networks, self.hostnames = parse_address_list(entries)
        self._resolve = resolve or _resolve
        self._clock = clock
        self._resolved: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = frozenset()
        self._next_at: float | None = None
        self._lock = threading.Lock()

    def literal(self) -> list[str]:
        """The IP/network entries as strings (for gunicorn's forwarded_allow_ips, which knows no host names)."""
        return [str(network) for network in self.networks]

    def __contains__(self, raw: object) -> bool:
        if not isinstance(raw, str) or not raw:
            return False
        try:
            address = ipaddress.ip_address(raw.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.networks):
            return True
        return bool(self.hostnames) and address in self._host_addresses()

    def _host_addresses(self) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        now = self._clock()
        with self._lock:
            if self._next_at is None or now >= self._next_at:
                found = set()
                unresolved = False
                for host in self.hostnames:
                    addresses = set()
                    for value in self._resolve(host):
                        try:
                            addresses.add(ipaddress.ip_address(value.split("%", 1)[0]))
                        except ValueError:
                            continue
                    unresolved |= not addresses
                    found |= addresses
                self._resolved = frozenset(found)
                self._next_at = now + (_RETRY_UNRESOLVED_SECONDS if unresolved else _RESOLVE_EVERY_SECONDS)
            return self._resolved


def _resolve(host: str) -> list[str]:
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
    except (OSError, UnicodeError):
        return []


class TrustedProxyFix:
    """ProxyFix for connections from a trusted proxy; every other request passes unchanged (headers ignored)."""

    def __init__(self, app: Any, trusted: AddressMatcher, hops: int) -> None:
        self.app = app
        self.trusted = trusted
        self.proxy_fix = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        peer = environ.get("REMOTE_ADDR", "")
        environ[PEER_ADDRESS_ENVIRON_KEY] = peer
        if peer in self.trusted:
            environ[TRUSTED_PROXY_ENVIRON_KEY] = True
            return self.proxy_fix(environ, start_response)
        environ[TRUSTED_PROXY_ENVIRON_KEY] = False
        return self.app(environ, start_response)
