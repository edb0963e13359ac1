"""Calls spread over every server process: auth-web's channel pool (``faceauth_common.grpc_client.open_channel``)
balances call by call with ``round_robin`` over all addresses of a target, so N processes of a model service each
get about 1/N of the calls — processes of one machine on distinct ports (``ip:port,ip:port``) and processes behind
one DNS name (a Kubernetes headless Service's pods), including one that appears after the channel was opened.

Each call carries a request id; the services log every call with their pid and the caller's request id, so the
calls of each measured phase are counted per server process from the services' own logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import GrpcTls, free_port, stop_process, wait_for_serving
from faceauth_common.grpc_client import open_channel
from faceauth_common.logs import request_id_var

SERVICE = "faceauth.recognition.v1.RecognitionService"
CALLS = 240
TOLERANCE = 0.20  # each process within ±20 % of an even share


class Server:
    def __init__(self, listen: str, grpc_tls: GrpcTls) -> None:
        self.listen = listen
        self.process = subprocess.Popen(
            [sys.executable, "-m", "recognition_service"],
            env={
                **os.environ,
                **grpc_tls.env,
                "RECOGNITION_LISTEN": listen,
                "RECOGNITION_WORKERS": "1",
                "RECOGNITION_METRICS_LISTEN": "off",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def stop(self) -> list[dict]:
        stop_process(self.process, timeout=60)
        output = self.process.stdout.read() if self.process.stdout else ""
        return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture
def servers(grpc_tls: GrpcTls) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def start(servers: list[Server], listen: str, grpc_tls: GrpcTls) -> Server:
    server = Server(listen, grpc_tls)
    servers.append(server)
    wait_for_serving(listen, SERVICE, server.process, security=grpc_tls.client)
    return server


def call(pool, calls: int, request_id: str) -> None:  # type: ignore[no-untyped-def]
    token = request_id_var.set(request_id)
    try:
        for _ in range(calls):
            stub = health_pb2_grpc.HealthStub(pool)  # a stub per call rotates the pool's connections
            answer = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30, wait_for_ready=True)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        request_id_var.reset(token)


def calls_per_server(logs: list[list[dict]], request_id: str) -> list[int]:
    return [
        sum(line.get("event") == "rpc" and line.get("request_id") == request_id for line in lines) for lines in logs
    ]


def assert_even(counts: list[int], total: int) -> None:
    assert sum(counts) == total, counts
    share = total / len(counts)
    assert all(abs(count - share) <= TOLERANCE * share for count in counts), (
        f"calls per process {counts}: not within ±{TOLERANCE:.0%} of {share:.0f}"
    )


def test_calls_spread_evenly_over_processes_on_distinct_ports(servers: list[Server], grpc_tls: GrpcTls) -> None:
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    for address in addresses:
        start(servers, address, grpc_tls)
    with open_channel(",".join(addresses), grpc_tls.client) as pool:
        call(pool, 40, "warm-up")  # until every connection is up
        call(pool, CALLS, "measured")
    logs = [server.stop() for server in servers]
    counts = calls_per_server(logs, "measured")
    assert_even(counts, CALLS)
    pids = {line["pid"] for lines in logs for line in lines if line.get("request_id") == "measured"}
    assert len(pids) == 2, "two distinct server processes answered"


def test_one_dns_name_reaches_every_address_and_a_refresh_finds_a_new_one(
    servers: list[Server], grpc_tls: GrpcTls
) -> None:
    """``localhost`` resolves to 127.0.0.1 and ::1 for gRPC's resolver: two addresses of one name, as a headless
    Service's name has one per pod. The second server starts after the channel was opened (a scaled-out
    Deployment's new pod): a refresh (what the pool does every ``refresh_seconds``) resolves again and uses it."""
    port = free_port()
    start(servers, f"127.0.0.1:{port}", grpc_tls)
    with open_channel(f"localhost:{port}", grpc_tls.client, refresh_seconds=0) as pool:
        call(pool, 20, "before")
        start(servers, f"[::1]:{port}", grpc_tls)
        pool.refresh()
        call(pool, 40, "warm-up")
        call(pool, CALLS, "after")
    logs = [server.stop() for server in servers]
    assert calls_per_server(logs, "before") == [20, 0]
    assert_even(calls_per_server(logs, "after"), CALLS)


def test_a_list_of_addresses_still_checks_the_certificate_name(servers: list[Server], grpc_tls: GrpcTls) -> None:
    """The list's host becomes the TLS name: a server whose certificate does not name it gets no call."""
    # The test certificates name localhost, 127.0.0.1 and ::1; 127.0.0.2 is loopback too but not named.
    port = free_port()
    server = Server(f"127.0.0.2:{port}", grpc_tls)
    servers.append(server)
    credentials = grpc_tls.client.channel_credentials()
    # The server itself is fine: a probe that checks the name its certificate carries gets SERVING.
    deadline = time.monotonic() + 120
    while True:
        options = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(f"127.0.0.2:{port}", credentials, options=options) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
        assert time.monotonic() < deadline and server.process.poll() is None, "the server did not start"
        time.sleep(0.5)
    with open_channel(f"127.0.0.2:{port},127.0.0.2:{port}", grpc_tls.client) as pool:
        token = request_id_var.set("misnamed")
        try:
            with pytest.raises(grpc.RpcError) as refused:
                health_pb2_grpc.HealthStub(pool).Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        finally:
            request_id_var.reset(token)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)  # type: ignore[attr-defined]
    assert calls_per_server([server.stop()], "misnamed") == [0]
