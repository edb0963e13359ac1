"""gRPC channels for callers of the faceauth services."""

from __future__ import annotations

import json

import grpc

from faceauth_common.grpc_server import MAX_MESSAGE_BYTES, REQUEST_ID_METADATA
from faceauth_common.logs import request_id_var

# Round-robin over every address the DNS name resolves to, so `--scale svc=3` spreads load.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


class _RequestIdInterceptor(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        metadata = list(client_call_details.metadata or [])
        metadata.append((REQUEST_ID_METADATA, request_id_var.get()))
        details = client_call_details._replace(metadata=metadata)
        return continuation(details, request)


def open_channel(target: str) -> grpc.Channel:
    """An insecure channel (services talk on a private network) with round-robin balancing.

    ``target`` is ``host:port`` or ``dns:///host:port``; a bare ``host:port`` gets the dns scheme
    so that every address of a scaled service is used.
    """
    if "://" not in target and not target.startswith(("unix:", "dns:")):
        target = f"dns:///{target}"
    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
        ],
    )
    return grpc.intercept_channel(channel, _RequestIdInterceptor())
