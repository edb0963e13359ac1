"""gRPC channels for callers of the faceauth services, balanced call by call over every server process.

A call must not stick to one server process: a model service scales out as several pods (Kubernetes, a headless
Service whose DNS name resolves to every ready pod) and, inside one machine, as several worker processes (each on
its own port, or sharing one port with SO_REUSEPORT). ``open_channel`` therefore

- resolves the target to *all* its addresses (``dns:///`` for a name, ``ipv4:``/``ipv6:`` for a list of
  ``ip:port`` addresses) and balances with gRPC's ``round_robin`` policy over them;
- keeps several connections (subchannels) to every address and rotates calls over them (``ChannelPool``): the
  kernel hands each SO_REUSEPORT *connection* to one worker, so one connection would pin every call to one worker;
- opens its channels again every ``refresh_seconds``, which resolves the name again: gRPC re-resolves by itself
  only when a connection breaks (a pod that goes away), never when pods are *added*, so a scaled-out
  Deployment would otherwise get no calls on its new pods until something fails.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from faceauth_common.grpc_server import MAX_MESSAGE_BYTES, REQUEST_ID_METADATA
from faceauth_common.logs import request_id_var
from faceauth_common.tls import GrpcSecurity

# Round-robin over every address the target resolves to.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})

#: Connections per address and caller process: enough that a pod's or machine's SO_REUSEPORT workers each get
#: some (with one per address, a 2-worker service had one idle worker; bench/README.md).
DEFAULT_CONNECTIONS = 4
#: How often the channels are opened again, so that a name is resolved again and new pods get calls.
DEFAULT_REFRESH_SECONDS = 60.0
#: How long a replaced generation of channels stays open for the calls still running on it (≥ their deadline).
DEFAULT_LONGEST_CALL_SECONDS = 60.0


class TargetError(ValueError):
    """A target that cannot be turned into a gRPC address (one clear message)."""


def secure_channel(address: str, security: GrpcSecurity) -> grpc.Channel:
    """A plain (single, unbalanced) channel to ``address`` with ``security``'s credentials (tests, benchmarks)."""
    credentials = security.channel_credentials()
    return grpc.insecure_channel(address) if credentials is None else grpc.secure_channel(address, credentials)


def resolve_target(target: str) -> tuple[str, str | None]:
    """The gRPC target URI for ``target`` and the authority (TLS name) to use, None for gRPC's own.

    - ``host:port`` → ``dns:///host:port``: every address the name resolves to (a headless Service's pods);
    - ``ip:port,ip:port,…`` → ``ipv4:…`` / ``ipv6:…`` with the one host as authority: several processes of one
      machine on distinct ports. All entries must be IP literals of one host (the certificate names that host);
    - ``dns:``, ``ipv4:``, ``ipv6:``, ``unix:`` URIs pass unchanged.
    """
    target = target.strip()
    if not target:
        raise TargetError("empty gRPC target")
    if target.startswith(("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:")):
        return target, None
    if "://" in target:
        raise TargetError(f"unsupported gRPC target scheme in {target!r} (use host:port, ip:port,… or dns:///)")
    if "," not in target:
        _split(target)
        return f"dns:///{target}", None
    entries = [_split(entry.strip()) for entry in target.split(",")]
    hosts = {host for host, _ in entries}
    if len(hosts) != 1:
        raise TargetError(
            f"a list of gRPC addresses must name one host (its certificate names it), got {sorted(hosts)}; "
            "for several machines use one DNS name that resolves to each of them"
        )
    host = hosts.pop()
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        raise TargetError(f"a list of gRPC addresses needs IP literals, got {host!r}; use one DNS name") from None
    listed = ",".join(f"[{h}]:{port}" if version == 6 else f"{h}:{port}" for h, port in entries)
    return f"ipv{version}:{listed}", f"[{host}]" if version == 6 else host


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"expected HOST:PORT in a gRPC target, got {address!r}")
    return host, int(port)


class _RequestIdInterceptor(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        metadata = list(client_call_details.metadata or [])
        metadata.append((REQUEST_ID_METADATA, request_id_var.get()))
        details = client_call_details._replace(metadata=metadata)
        return continuation(details, request)


class ChannelPool(grpc.Channel):
    """``connections`` channels to one target, used in turn call by call, opened again every ``refresh_seconds``.

    Each channel has its own subchannels (connections) to every address of the target, so the pool holds
    ``connections`` connections per address; a channel's ``round_robin`` cycles its calls over the addresses.
    A refresh opens a new generation of channels (which resolves the target again); the replaced one stays
    open ``longest_call_seconds`` for the calls still running on it, then is closed.
    Stubs bind their methods when created: create the stub per call (it is cheap) to rotate.
    """

    def __init__(
        self,
        open_one: Callable[[], grpc.Channel],
        connections: int = DEFAULT_CONNECTIONS,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        longest_call_seconds: float = DEFAULT_LONGEST_CALL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        if refresh_seconds < 0 or longest_call_seconds < 0:
            raise ValueError("refresh_seconds and longest_call_seconds must not be negative")
        self._open_one = open_one
        self._connections = connections
        self._refresh_seconds = refresh_seconds  # 0: never
        self._longest_call_seconds = longest_call_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._callbacks: list[tuple[Any, bool]] = []
        self._channels = self._open_generation()
        self._opened_at = clock()
        self._retired: list[tuple[float, list[grpc.Channel]]] = []
        self._turn = 0
        self._closed = False

    @property
    def channels(self) -> list[grpc.Channel]:
        """The current generation (for tests and probes)."""
        with self._lock:
            return list(self._channels)

    def _open_generation(self) -> list[grpc.Channel]:
        channels = [self._open_one() for _ in range(self._connections)]
        for callback, try_to_connect in self._callbacks:
            for channel in channels:
                channel.subscribe(callback, try_to_connect)
        return channels

    def refresh(self) -> None:
        """Open a new generation now (resolving the target again); the old one closes after the longest call."""
        with self._lock:
            self._refresh_locked(self._clock())

    def _refresh_locked(self, now: float) -> None:
        self._retired.append((now, self._channels))
        self._channels = self._open_generation()
        self._opened_at = now

    def _next(self) -> grpc.Channel:
        expired: list[grpc.Channel] = []
        with self._lock:
            if self._closed:
                raise ValueError("the channel pool is closed")
            now = self._clock()
            if self._refresh_seconds and now - self._opened_at >= self._refresh_seconds:
                self._refresh_locked(now)
            while self._retired and now - self._retired[0][0] >= self._longest_call_seconds:
                expired += self._retired.pop(0)[1]
            channel = self._channels[self._turn % len(self._channels)]
            self._turn += 1
        for old in expired:  # outside the lock: close() waits for the channel's threads
            old.close()
        return channel

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().unary_unary(*args, **kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().stream_stream(*args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        with self._lock:
            self._callbacks.append((callback, try_to_connect))
            channels = list(self._channels)
        for channel in channels:
            channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        with self._lock:
            self._callbacks = [entry for entry in self._callbacks if entry[0] is not callback]
            channels = self._channels + [channel for _, retired in self._retired for channel in retired]
        for channel in channels:
            channel.unsubscribe(callback)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            channels = self._channels + [channel for _, retired in self._retired for channel in retired]
            self._retired.clear()
        for channel in channels:
            channel.close()

    def __enter__(self) -> ChannelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_channel(
    target: str,
    security: GrpcSecurity,
    connections: int = DEFAULT_CONNECTIONS,
    *,
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    longest_call_seconds: float = DEFAULT_LONGEST_CALL_SECONDS,
) -> ChannelPool:
    """A ``ChannelPool`` of mutually authenticated TLS channels (``security``) balanced over ``target``.

    ``target`` is ``host:port`` (every address of the name: a scaled service), ``ip:port,ip:port,…`` (processes of
    one host on distinct ports) or a gRPC URI (``resolve_target``). The server's certificate must name the host.
    ``connections`` per address (see ``ChannelPool``); ``refresh_seconds`` between re-resolutions (0: only when a
    connection breaks); ``longest_call_seconds`` ≥ the callers' longest deadline. Plaintext only when
    ``security`` says so explicitly (``GRPC_INSECURE``); unconfigured security raises ``TlsNotConfigured``.
    """
    credentials = security.channel_credentials()
    uri, authority = resolve_target(target)
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        # A restarted or rescheduled server is reconnected within seconds: gRPC's default backoff grows to 120 s
        # while a model service loads (a replaced worker, a pod starting on a busy node).
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 5_000),
        # Without a local pool, channels with equal arguments share one connection per address.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if authority is not None:
        # An address list has no name of its own: the TLS check and :authority use the host it lists.
        options.append(("grpc.default_authority", authority))

    def one() -> grpc.Channel:
        if credentials is None:
            channel = grpc.insecure_channel(uri, options=options)
        else:
            channel = grpc.secure_channel(uri, credentials, options=options)
        return grpc.intercept_channel(channel, _RequestIdInterceptor())

    return ChannelPool(one, connections, refresh_seconds, longest_call_seconds)
