"""A service started with several worker processes shares one port, and a client's channel pool
spreads its calls over all of them."""

from __future__ import annotations

import json
import signal
import time

from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import GrpcTls, free_port, recognition_process, wait_for_serving
from faceauth_common.grpc_client import open_channel

SERVICE = "faceauth.recognition.v1.RecognitionService"


def test_worker_processes_share_the_port_and_the_pool_reaches_each(grpc_tls: GrpcTls) -> None:
    address = f"127.0.0.1:{free_port()}"
    with recognition_process(grpc_tls, address, workers=2) as process:
        wait_for_serving(address, SERVICE, process, security=grpc_tls.client)
        # Each worker reports SERVING on its own; wait until a pool sees only SERVING answers.
        pool = open_channel(address, grpc_tls.client, connections=16)
        serving_answers = 0
        deadline = time.monotonic() + 120
        while serving_answers < 64 and time.monotonic() < deadline:
            stub = health_pb2_grpc.HealthStub(pool)  # a stub per call rotates the connections
            status = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=60, wait_for_ready=True)
            serving_answers += status.status == health_pb2.HealthCheckResponse.SERVING
        pool.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    rpc_pids = {line["pid"] for line in lines if line["event"] == "rpc" and "Health/Check" in line.get("method", "")}
    worker_pids = {line["pid"] for line in lines if line["event"] == "listening"}
    assert len(worker_pids) == 2
    assert rpc_pids == worker_pids, "calls did not reach every worker process"
    assert serving_answers == 64
    assert sum(line["event"] == "stopped" for line in lines) == 2
