"""The local run with 2 workers per model service: auth-web gets the list of the workers' own ports as its targets,
so its calls split evenly over the workers — the SO_REUSEPORT imbalance of the shared port is gone.

auth-web's ``/readyz`` makes one health call to each model service through its balanced channel pool; each
worker logs every call with its pid (the ``[liveness]`` / ``[recognition]`` lines of the run's output).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from localrun.settings import RunSettings
from tests.integration.test_grpc_worker_ports import free_port_run
from tests.integration.test_run import _stack_env, start_stack, stop_stack

pytestmark = pytest.mark.skipif(
    RunSettings.from_env({}).nginx is None, reason="nginx is not installed (.ci/run installs it)"
)

READYZ_CALLS = 100
TOLERANCE = 0.20


def service_lines(lines: list[str], service: str) -> list[dict]:
    prefix = f"[{service}]"
    records = []
    for line in lines:
        if line.startswith(prefix) and "{" in line:
            try:
                records.append(json.loads(line[line.index("{") :]))
            except json.JSONDecodeError:
                continue
    return records


def health_calls_per_pid(lines: list[str], service: str) -> Counter[int]:
    return Counter(
        record["pid"]
        for record in service_lines(lines, service)
        if record.get("event") == "rpc" and "Health/Check" in record.get("method", "")
    )


def test_the_local_run_balances_auth_web_calls_over_each_workers_own_port(tmp_path: Path) -> None:
    liveness_ports, recognition_ports = free_port_run(2), free_port_run(2)
    env = _stack_env(
        tmp_path / "var",
        FACEAUTH_EMBEDDED="1",
        LIVENESS_WORKERS="2",
        RECOGNITION_WORKERS="2",
        LIVENESS_WORKER_PORTS_FROM=str(liveness_ports),
        RECOGNITION_WORKER_PORTS_FROM=str(recognition_ports),
    )
    stack = start_stack(env)
    try:
        workers = {}
        for service, first in (("liveness", liveness_ports), ("recognition", recognition_ports)):
            listening = {
                record["worker_listen"]: record["pid"]
                for record in service_lines(stack.lines, service)
                if record.get("event") == "listening"
            }
            assert set(listening) == {f"127.0.0.1:{first}", f"127.0.0.1:{first + 1}"}, stack.output[-3000:]
            workers[service] = set(listening.values())
        mark = len(stack.lines)  # the run's own readiness probes are over
        with httpx.Client(timeout=30) as client:
            for _ in range(READYZ_CALLS):
                answer = client.get(f"http://{env['AUTH_WEB_LISTEN']}/readyz")
                assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the output pump may lag a little behind the calls
            counts = {service: health_calls_per_pid(stack.lines[mark:], service) for service in workers}
            if all(sum(count.values()) >= READYZ_CALLS for count in counts.values()):
                break
            time.sleep(0.2)
    finally:
        assert stop_stack(stack) == 0, stack.output[-3000:]
    share = READYZ_CALLS / 2
    for service, count in counts.items():
        assert sum(count.values()) == READYZ_CALLS, (service, count)
        assert set(count) == workers[service], f"{service}: calls reached {dict(count)}, workers {workers[service]}"
        assert all(abs(calls - share) <= TOLERANCE * share for calls in count.values()), (
            f"{service}: calls per worker {dict(count)} not within ±{TOLERANCE:.0%} of {share:.0f}"
        )
