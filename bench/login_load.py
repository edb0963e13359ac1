"""End-to-end login load through the gateway: an asyncio + httpx load generator doing the real flow.

Setup (once): register a fresh bench user and enroll it through the HTTP API, with CSRF, like the browser.
Each login, by each virtual user, in a fresh cookie jar (a new browser session):
  1. ``GET /login``                 → session cookie + CSRF token from the page;
  2. ``POST /api/login/challenge``  → nonce + the actions to perform (must be the clip's action: the bench
                                       stack pins AUTH_CHALLENGE_ACTIONS=BLINK, AUTH_CHALLENGE_LENGTH=1);
  3. ``POST /api/login``            → multipart nonce, password, frame_times_ms, 8 ``frames`` (640×480 JPEG).
The **login decision latency** is step 3's round trip (frames POSTed at the gateway → response); the
flow latency covers steps 1–3. Virtual users cycle through the 8-frame captures of the clip that the
services accept (checked once over gRPC). Each concurrency level runs for ``--duration`` seconds.

Rate limits and lockout would stop a load test after a few logins: the bench stack raises them via
configuration (see bench/run_all.sh). CPU seconds of every service process (gateway, auth-web,
liveness, recognition; Postgres and Redis listed apart because they are shared) are read from /proc
before and after each level.

    .venv/bin/python -m bench.login_load [--base-url https://127.0.0.1:8443] [--duration 60] [--concurrency 1,4,16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from bench import processes, report
from bench.frames import DEFAULT_CLIP, Frame, describe, relative_times
from bench.scenario import (
    CHALLENGE_ACTION,
    Scenario,
    Stubs,
    build_scenario,
    choose_enrollment,
    classify_windows,
    enroll_templates,
)

LOGIN_FRAMES = 8
APP_SERVICES = ("gateway", "auth-web", "liveness", "recognition")
_CSRF_PATTERNS = (
    re.compile(r'<meta[^>]+name="csrf-token"[^>]+content="([^"]+)"'),
    re.compile(r'<input[^>]+name="csrf_token"[^>]+value="([^"]+)"'),
    re.compile(r'name="csrf_token"\s+type="hidden"\s+value="([^"]+)"'),
)


class FlowError(Exception):
    """A step of the flow answered something a browser would not expect."""


def csrf_token(html: str) -> str:
    for pattern in _CSRF_PATTERNS:
        match = pattern.search(html)
        if match:
            return match.group(1)
    raise FlowError("no CSRF token in the page")


def frame_files(capture: list[Frame]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("frames", (f"frame{index}.jpg", frame.jpeg, "image/jpeg")) for index, frame in enumerate(capture)]


def capture_seconds(capture: list[Frame]) -> float:
    """How long the page films the capture: auth-web refuses a capture posted sooner after its challenge than
    the span of its frame times (CAPTURE_TOO_EARLY), so the bench waits that long, as a browser does."""
    times = relative_times(capture)
    return (times[-1] - times[0]) / 1000.0 if times else 0.0


@dataclass
class Api:
    """The HTTP API as the browser uses it (paths of auth-web behind the gateway)."""

    client: httpx.AsyncClient

    async def page_token(self, path: str) -> str:
        response = await self.client.get(path)
        if response.status_code != 200:
            raise FlowError(f"GET {path}: HTTP {response.status_code}")
        # What a browser sends with the page's own requests: Flask-WTF checks the referrer over HTTPS.
        self.client.headers["Referer"] = str(response.url)
        return csrf_token(response.text)

    async def post_json(self, path: str, token: str, payload: dict[str, object]) -> httpx.Response:
        return await self.client.post(path, json=payload, headers={"X-CSRFToken": token})

    async def register(self, username: str, password: str) -> None:
        token = await self.page_token("/register")
        response = await self.client.post(
            "/register",
            data={"csrf_token": token, "username": username, "password": password, "confirm": password},
            headers={"X-CSRFToken": token},
            follow_redirects=True,
        )
        if response.status_code >= 400:
            raise FlowError(f"register: HTTP {response.status_code}: {response.text[:300]}")

    async def enroll(self, capture: list[Frame]) -> dict[str, object]:
        token = await self.page_token("/enroll")
        challenge = await self.post_json("/api/enroll/challenge", token, {})
        if challenge.status_code != 200:
            raise FlowError(f"enroll challenge: HTTP {challenge.status_code}: {challenge.text[:300]}")
        body = challenge.json()
        await asyncio.sleep(capture_seconds(capture))
        response = await self.client.post(
            "/api/enroll",
            data={"nonce": body["nonce"], "frame_times_ms": json.dumps(relative_times(capture))},
            files=frame_files(capture),
            headers={"X-CSRFToken": token},
        )
        if response.status_code != 200:
            raise FlowError(f"enroll: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()


@dataclass
class LoginSample:
    started: float
    decision_seconds: float
    flow_seconds: float
    status: int  # HTTP status of the login POST; 0 when the flow failed before or with an exception
    accepted: bool
    error: str = ""


@dataclass
class LevelResult:
    concurrency: int
    duration: float
    samples: list[LoginSample] = field(default_factory=list)


async def one_login(
    client: httpx.AsyncClient, username: str, password: str, capture: list[Frame], actions: list[str]
) -> LoginSample:
    started = time.perf_counter()
    client.cookies.clear()
    client.headers.pop("Referer", None)
    api = Api(client)
    try:
        token = await api.page_token("/login")
        challenge = await api.post_json("/api/login/challenge", token, {"username": username})
        if challenge.status_code != 200:
            return LoginSample(started, 0.0, time.perf_counter() - started, challenge.status_code, False, "challenge")
        body = challenge.json()
        if list(body.get("actions", [])) != actions:
            raise FlowError(f"challenge asked for {body.get('actions')}, the bench capture shows {actions}")
        await asyncio.sleep(capture_seconds(capture))
        posted = time.perf_counter()
        response = await client.post(
            "/api/login",
            data={"nonce": body["nonce"], "password": password, "frame_times_ms": json.dumps(relative_times(capture))},
            files=frame_files(capture),
            headers={"X-CSRFToken": token},
        )
        finished = time.perf_counter()
    except (httpx.HTTPError, FlowError, ValueError, KeyError) as error:
        return LoginSample(started, 0.0, time.perf_counter() - started, 0, False, f"{type(error).__name__}: {error}")
    accepted = response.status_code == 200 and bool(response.json().get("ok"))
    error = "" if response.status_code < 500 and response.status_code != 429 else f"HTTP {response.status_code}"
    return LoginSample(started, finished - posted, finished - started, response.status_code, accepted, error)


def make_client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max(2, concurrency), max_keepalive_connections=max(2, concurrency))
    # The local gateway's certificate is self-signed; TLS is still negotiated and paid for.
    return httpx.AsyncClient(base_url=base_url, verify=False, timeout=60.0, limits=limits)  # noqa: S501


async def run_level(
    base_url: str,
    concurrency: int,
    duration: float,
    username: str,
    password: str,
    captures: list[list[Frame]],
    actions: list[str],
) -> LevelResult:
    result = LevelResult(concurrency=concurrency, duration=duration)
    deadline = time.perf_counter() + duration

    async def virtual_user(index: int) -> None:
        async with make_client(base_url, 1) as client:
            turn = index
            while time.perf_counter() < deadline:
                capture = captures[turn % len(captures)]
                turn += concurrency
                result.samples.append(await one_login(client, username, password, capture, actions))

    level_started = time.perf_counter()
    await asyncio.gather(*(virtual_user(index) for index in range(concurrency)))
    # Logins in flight at the deadline finish; the throughput window includes them.
    result.duration = time.perf_counter() - level_started
    return result


def summarise_level(level: LevelResult, cpu: dict[str, float], client_cpu: float) -> dict[str, object]:
    samples = level.samples
    completed = [s for s in samples if s.status and not s.error]
    accepted = [s for s in completed if s.accepted]
    errors = [s for s in samples if s.error]
    app_cpu = sum(cpu.get(name, 0.0) for name in APP_SERVICES)
    logins = len(completed)
    error_kinds: dict[str, int] = {}
    for sample in errors:
        error_kinds[sample.error[:80]] = error_kinds.get(sample.error[:80], 0) + 1
    return {
        "concurrency": level.concurrency,
        "duration_seconds": round(level.duration, 1),
        "logins_attempted": len(samples),
        "logins_completed": logins,
        "logins_accepted": len(accepted),
        "logins_rejected": logins - len(accepted),
        "errors": len(errors),
        "error_kinds": error_kinds,
        "throughput_logins_per_second": round(logins / level.duration, 3) if level.duration else 0.0,
        "decision_latency": report.summarise_ms(s.decision_seconds for s in completed),
        "flow_latency": report.summarise_ms(s.flow_seconds for s in completed),
        "cpu_seconds": cpu,
        "cpu_seconds_per_login_app": round(app_cpu / logins, 4) if logins else None,
        "cpu_seconds_per_login_with_db": round(sum(cpu.values()) / logins, 4) if logins else None,
        "load_generator_cpu_seconds": round(client_cpu, 2),
    }


def load_generator_cpu_seconds() -> float:
    """CPU seconds this process (the load generator) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def setup_user(base_url: str, username: str, password: str, enroll_capture: list[Frame]) -> dict[str, object]:
    async with make_client(base_url, 1) as client:
        api = Api(client)
        await api.register(username, password)
        return await api.enroll(enroll_capture)


@dataclass
class LoadPlan:
    """What every login of a load run needs: the scenario, the accepted captures, the enrolled bench user."""

    scenario: Scenario
    captures: list[list[Frame]]
    actions: list[str]
    username: str
    password: str
    enrolled: dict[str, object]


def prepare_load(base_url: str, liveness: str, recognition: str, clip: str = DEFAULT_CLIP) -> LoadPlan:
    """Pick the 8-frame captures the services accept (asked over gRPC), then register and enroll a fresh user."""
    scenario = build_scenario(clip)
    actions = [CHALLENGE_ACTION]

    stubs = Stubs(liveness, recognition)
    stubs.wait_ready()
    if not choose_enrollment(stubs, scenario, actions):
        print("warning: no 10-frame window of the clip passes liveness; enrollment will likely be refused")
    templates = enroll_templates(stubs, scenario)
    verdicts = classify_windows(stubs, scenario.login_windows(LOGIN_FRAMES, stride=2), templates, actions)
    stubs.close()
    pool = {frame.time_ms: index for index, frame in enumerate(scenario.login_pool)}
    captures = [scenario.login_pool[pool[v.start_ms] : pool[v.start_ms] + LOGIN_FRAMES] for v in verdicts if v.accepted]
    if not captures:
        print("warning: no capture was accepted by the services over gRPC; using every window (expect rejections)")
        captures = scenario.login_windows(LOGIN_FRAMES, stride=2)
    print(f"{len(captures)} of {len(verdicts)} 8-frame captures accepted by the services over gRPC", flush=True)

    username = f"bench{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    enrolled = asyncio.run(setup_user(base_url, username, password, scenario.enroll))
    print(f"registered and enrolled {username}: {enrolled}", flush=True)
    return LoadPlan(scenario, captures, actions, username, password, enrolled)


def service_ports(
    base_url: str, auth_web_port: int, liveness: str, recognition: str, shared: bool = True
) -> dict[str, int]:
    """The port each part of the stack listens on (to find its processes); ``shared`` adds Postgres and Redis."""
    ports = {
        "gateway": urlsplit(base_url).port or 443,
        "auth-web": auth_web_port,
        "liveness": int(liveness.rsplit(":", 1)[1]),
        "recognition": int(recognition.rsplit(":", 1)[1]),
    }
    if shared:
        ports |= {"postgres (shared)": 5432, "redis (shared)": 6379}
    return ports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="https://127.0.0.1:8443", help="the gateway")
    parser.add_argument("--liveness", default="127.0.0.1:50051", help="to pick captures the services accept")
    parser.add_argument("--recognition", default="127.0.0.1:50052")
    parser.add_argument("--auth-web-port", type=int, default=8000, help="to find auth-web's processes")
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per concurrency level")
    parser.add_argument("--note", default="")
    parser.add_argument("--name", default="login_load")
    args = parser.parse_args(argv)

    levels = [int(value) for value in args.concurrency.split(",")]
    machine = report.machine_details(contention_note=args.note)
    plan = prepare_load(args.base_url, args.liveness, args.recognition, args.clip)
    scenario, captures, actions = plan.scenario, plan.captures, plan.actions
    username, password, enrolled = plan.username, plan.password, plan.enrolled

    ports = service_ports(args.base_url, args.auth_web_port, args.liveness, args.recognition)
    pids = processes.discover(ports)
    missing = [name for name, found in pids.items() if not found]
    if missing:
        print(f"warning: no process found listening for {missing}; their CPU is not counted", flush=True)

    # Warm-up: a few logins so that caches, pools and channels exist before measuring.
    asyncio.run(run_level(args.base_url, 1, 3.0, username, password, captures, actions))

    summaries = []
    for concurrency in levels:
        pids = processes.discover(ports)  # gunicorn may have replaced a worker
        before = processes.cpu_snapshot(pids)
        client_before = load_generator_cpu_seconds()
        level = asyncio.run(run_level(args.base_url, concurrency, args.duration, username, password, captures, actions))
        after = processes.cpu_snapshot(pids)
        cpu = processes.cpu_delta(before, after)
        summary = summarise_level(level, cpu, load_generator_cpu_seconds() - client_before)
        summary["cpu_seconds_by_process"] = processes.cpu_delta_by_process(before, after)
        summaries.append(summary)
        print(json.dumps(summary), flush=True)

    rows = []
    for s in summaries:
        decision = s["decision_latency"]
        rows.append(
            [
                s["concurrency"],
                s["duration_seconds"],
                s["logins_completed"],
                s["logins_accepted"],
                s["errors"],
                s["throughput_logins_per_second"],
                decision.get("median_ms"),  # type: ignore[union-attr]
                decision.get("p95_ms"),  # type: ignore[union-attr]
                decision.get("p99_ms"),  # type: ignore[union-attr]
                s["flow_latency"].get("median_ms"),  # type: ignore[union-attr]
                s["cpu_seconds_per_login_app"],
                s["cpu_seconds_per_login_with_db"],
            ]
        )
    data = {
        "benchmark": "login_load",
        "machine": machine,
        "base_url": args.base_url,
        "clip": args.clip,
        "frames": describe(scenario.frames),
        "frames_per_login": LOGIN_FRAMES,
        "captures_in_rotation": len(captures),
        "challenge": actions,
        "enrollment": enrolled,
        "service_pids": {name: sorted(values) for name, values in pids.items()},
        "levels": summaries,
    }
    body = (
        f"Through the gateway ({args.base_url}, TLS), 8 frames per login (640×480 JPEG q85, 6 fps, "
        f"{len(captures)} different accepted captures of `{args.clip}` in rotation), challenge {actions} pinned "
        "by configuration, rate limits and lockout raised by configuration for the bench stack. "
        "Decision = the POST of the frames to its response; flow = login page + challenge + decision. "
        "CPU-s/login: gateway + auth-web + liveness + recognition (all processes, /proc); "
        "'+ DB' adds Postgres and Redis, which other programs on this machine may also use.\n\n"
        + report.markdown_table(
            [
                "clients",
                "s",
                "logins",
                "accepted",
                "errors",
                "logins/s",
                "decision median ms",
                "p95 ms",
                "p99 ms",
                "flow median ms",
                "CPU-s/login",
                "CPU-s/login + DB",
            ],
            rows,
        )
    )
    services = list(ports)
    breakdown = report.markdown_table(
        ["clients", *[f"{name} CPU-s/login" for name in services], "load generator CPU-s/login"],
        [
            [
                s["concurrency"],
                *[
                    round(s["cpu_seconds"].get(name, 0.0) / s["logins_completed"], 4) if s["logins_completed"] else None  # type: ignore[union-attr,operator]
                    for name in services
                ],
                round(s["load_generator_cpu_seconds"] / s["logins_completed"], 4) if s["logins_completed"] else None,  # type: ignore[operator]
            ]
            for s in summaries
        ],
    )
    body += "\n\nCPU seconds per login, by service (the load generator runs on the same cores):\n\n" + breakdown
    json_path, md_path = report.write_result(args.name, "Login decision latency through the gateway", data, body)
    print(body)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
