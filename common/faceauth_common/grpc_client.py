"""gRPC channels for callers of the faceauth services."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import grpc

from faceauth_common.grpc_server import MAX_MESSAGE_BYTES, REQUEST_ID_METADATA
from faceauth_common.logs import request_id_var
from faceauth_common.tls import GrpcSecurity

# Round-robin over every address the DNS name resolves to, so `--scale svc=3` spreads load.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def secure_channel(address: str, security: GrpcSecurity) -> grpc.Channel:
    """A plain (single, unbalanced) channel to ``address`` with ``security``'s credentials (tests, benchmarks)."""
    credentials = security.channel_credentials()
    return grpc.insecure_channel(address) if credentials is None else grpc.secure_channel(address, credentials)


class _RequestIdInterceptor(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        metadata = list(client_call_details.metadata or [])
        metadata.append((REQUEST_ID_METADATA, request_id_var.get()))
        details = client_call_details._replace(metadata=metadata)
        return continuation(details, request)


class ChannelPool(grpc.Channel):
    """Several connections to one target, used in turn call by call.

    A service with several worker processes shares its port with SO_REUSEPORT, and the kernel
    hands each *connection* (not each call) to one worker. One connection per client process
    would pin all of that client's calls to one worker; a few connections spread them.
    Stubs bind their methods when created: create the stub per call (it is cheap) to rotate.
    """

    def __init__(self, channels: list[grpc.Channel]) -> None:
        self._channels = channels
        self._cycle = itertools.cycle(channels)
        self._lock = threading.Lock()

    def _next(self) -> grpc.Channel:
        with self._lock:
            return next(self._cycle)

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().unary_unary(*args, **kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().stream_stream(*args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        for channel in self._channels:
            channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        for channel in self._channels:
            channel.unsubscribe(callback)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> ChannelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_channel(target: str, security: GrpcSecurity, connections: int = 4) -> grpc.Channel:
    """Mutually authenticated TLS channel(s) (``security``) with round-robin balancing.

    ``target`` is ``host:port`` or ``dns:///host:port``; a bare ``host:port`` gets the dns scheme
    so that every address of a scaled service is used. The server's certificate must name the host
    of ``target``. ``connections`` > 1 returns a ``ChannelPool`` of that many separate connections
    (see there why). Plaintext only when ``security`` says so explicitly (``GRPC_INSECURE``);
    unconfigured security raises ``TlsNotConfigured``.
    """
    credentials = security.channel_credentials()
    if "://" not in target and not target.startswith(("unix:", "dns:")):
        target = f"dns:///{target}"
    options = [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        # Without a local pool, channels with equal arguments share one connection.
        ("grpc.use_local_subchannel_pool", 1),
    ]

    def one() -> grpc.Channel:
        if credentials is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, credentials, options=options)

    channels = [grpc.intercept_channel(one(), _RequestIdInterceptor()) for _ in range(max(1, connections))]
    return channels[0] if len(channels) == 1 else ChannelPool(channels)
