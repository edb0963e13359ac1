"""How many cores and pods faceauth needs for a login rate: ``python -m bench.capacity --logins-per-second N``.

Everything comes from measurements and the manifests, nothing is typed in here:
- CPU seconds per login for each service: ``bench/results/login_load.json`` (the largest of its load levels, all
  processes of a service, from /proc), scaled from its frames per login to ``--frames`` with the per-call CPU that
  ``bench/results/component_latency.json`` measured for Check and Verify at 1, 8 and 15 frames;
- the time one call takes (the service time) and its p95: ``component_latency.json`` (unloaded, sequential);
- auth-web's and the gateway's share of the decision latency: the login p95 at one client minus the p95 of
  Verify ∥ Check at the same frame count;
- each pod's CPU request and the autoscalers' target utilisation and ceilings: ``deploy/kubernetes``.

The model: logins arrive at random (Poisson). A model-service pod runs one server process, which works on about one
call at a time (a call keeps about one core busy; dlib's landmarks hold the GIL: bench/results/gil.md), so a
service of c pods is an M/M/c queue with service time S. Its p95 response is taken as p95(wait) + p95(S), the
wait's tail from Erlang C: P(wait > t) = C(c, λS) · exp(-(c/S - λ) t). Liveness and recognition run in parallel,
so the decision's p95 is the slower of the two plus auth-web's overhead. A pod count must also keep the pods at or
below the autoscaler's target utilisation, else the HPA adds pods anyway. See docs/scaling.md for what the numbers
mean and their limits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results"
MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
P95_TAIL = 0.05
#: PostgreSQL's own default (postgresql.conf max_connections); managed services often set their own.
POSTGRES_DEFAULT_CONNECTIONS = 100


# ---- the queue --------------------------------------------------------------------------------------------------


def erlang_c(servers: int, offered: float) -> float:
    """Probability that a call waits in an M/M/c queue with ``servers`` and ``offered`` load (λ·S, Erlangs)."""
    if offered <= 0:
        return 0.0
    if offered >= servers:
        return 1.0
    blocking = 1.0  # Erlang B by recursion: no factorials, no overflow for large c
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return servers * blocking / (servers - offered * (1 - blocking))


def wait_p95_seconds(servers: int, arrivals: float, service_seconds: float) -> float:
    """The 95th percentile of the time a call waits for a free server (0 when fewer than 5 % wait)."""
    offered = arrivals * service_seconds
    if offered >= servers:
        return math.inf
    waiting = erlang_c(servers, offered)
    if waiting <= P95_TAIL:
        return 0.0
    return math.log(waiting / P95_TAIL) / (servers / service_seconds - arrivals)


# ---- the measurements --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelService:
    name: str  # liveness / recognition
    method: str  # the call a login makes: Check / Verify
    cpu_per_login: float  # CPU-s per login at the chosen frame count, all of the service's processes
    service_seconds: float  # one call's time on an unloaded process (median)
    service_p95_seconds: float
    cpu_request: float  # cores per pod (deploy/kubernetes)
    min_replicas: int  # prod overlay's autoscaler floor
    max_replicas: int  # prod overlay's autoscaler ceiling


@dataclass(frozen=True)
class Measurements:
    frames: int
    measured_frames: int
    model_services: tuple[ModelService, ...]
    auth_web_cpu_per_login: float
    gateway_cpu_per_login: float
    postgres_cpu_per_login: float
    redis_cpu_per_login: float
    overhead_p95_seconds: float  # auth-web + gateway share of the decision p95
    auth_web_cpu_request: float
    auth_web_min_replicas: int
    auth_web_connections_per_pod: int  # database connections one pod may hold: gunicorn workers x threads
    auth_web_max_replicas: int
    target_utilisation: float  # the HPAs' averageUtilization, as a fraction
    source: str


def interpolate(points: dict[int, float], frames: int) -> float:
    """Linear between measured frame counts, the nearest segment's slope outside them."""
    xs = sorted(points)
    if frames in points:
        return points[frames]
    lower = max([x for x in xs if x < frames] or xs[:1])
    upper = min([x for x in xs if x > frames] or xs[-1:])
    if lower == upper:
        lower, upper = (xs[-2], xs[-1]) if frames > xs[-1] else (xs[0], xs[1])
    slope = (points[upper] - points[lower]) / (upper - lower)
    return max(0.0, points[lower] + slope * (frames - lower))


def _cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _manifest(name: str) -> list[dict]:
    return [document for document in yaml.safe_load_all((MANIFESTS / name).read_text()) if document]


def _cpu_request(file: str) -> float:
    deployment = next(d for d in _manifest(f"base/{file}") if d["kind"] == "Deployment")
    return _cpu(deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"])


def _auth_web_concurrency() -> int:
    """Requests one auth-web pod handles at once (each holds at most one pooled database connection)."""
    config = next(d for d in _manifest("base/config.yaml") if d["metadata"]["name"] == "faceauth-auth-web")["data"]
    return int(config["AUTH_WEB_WORKERS"]) * int(config["AUTH_WEB_THREADS"])


def _autoscaling() -> tuple[dict[str, tuple[int, int]], float]:
    base = [d for f in ("auth-web.yaml", "liveness.yaml", "recognition.yaml") for d in _manifest(f"base/{f}")]
    targets = {
        metric["resource"]["target"]["averageUtilization"]
        for d in base
        if d["kind"] == "HorizontalPodAutoscaler"
        for metric in d["spec"]["metrics"]
    }
    if len(targets) != 1:
        raise ValueError(f"the autoscalers disagree on the CPU target: {sorted(targets)}")
    ceilings = {
        d["metadata"]["name"]: (d["spec"]["minReplicas"], d["spec"]["maxReplicas"])
        for d in _manifest("overlays/prod/autoscaling.yaml")
        if d["kind"] == "HorizontalPodAutoscaler"
    }
    return ceilings, targets.pop() / 100


def load_measurements(frames: int, results: Path = RESULTS) -> Measurements:
    login = json.loads((results / "login_load.json").read_text())
    component = json.loads((results / "component_latency.json").read_text())
    measured_frames = int(login["frames_per_login"])

    def per_login(service: str) -> float:
        return max(level["cpu_seconds"][service] / level["logins_completed"] for level in login["levels"])

    calls = {(r["method"], r["frames"]): r for r in component["results"]}

    def call_points(method: str, service: str) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
        cpu = {f: r["cpu_seconds_per_call"][service] for (m, f), r in calls.items() if m == method}
        median = {f: r["latency"]["median_ms"] / 1000 for (m, f), r in calls.items() if m == method}
        p95 = {f: r["latency"]["p95_ms"] / 1000 for (m, f), r in calls.items() if m == method}
        return cpu, median, p95

    ceilings, target = _autoscaling()
    services = []
    for name, method, file in (("liveness", "Check", "liveness.yaml"), ("recognition", "Verify", "recognition.yaml")):
        cpu, median, p95 = call_points(method, name)
        scale = interpolate(cpu, frames) / interpolate(cpu, measured_frames)
        services.append(
            ModelService(
                name=name,
                method=method,
                cpu_per_login=per_login(name) * scale,
                service_seconds=interpolate(median, frames),
                service_p95_seconds=interpolate(p95, frames),
                cpu_request=_cpu_request(file),
                min_replicas=ceilings[name][0],
                max_replicas=ceilings[name][1],
            )
        )
    one_client = min(login["levels"], key=lambda level: level["concurrency"])
    both = calls[("Verify ∥ Check", measured_frames)]["latency"]["p95_ms"]
    return Measurements(
        frames=frames,
        measured_frames=measured_frames,
        model_services=tuple(services),
        auth_web_cpu_per_login=per_login("auth-web"),
        gateway_cpu_per_login=per_login("gateway"),
        postgres_cpu_per_login=per_login("postgres (shared)"),
        redis_cpu_per_login=per_login("redis (shared)"),
        overhead_p95_seconds=max(0.0, (one_client["decision_latency"]["p95_ms"] - both) / 1000),
        auth_web_cpu_request=_cpu_request("auth-web.yaml"),
        auth_web_min_replicas=ceilings["auth-web"][0],
        auth_web_connections_per_pod=_auth_web_concurrency(),
        auth_web_max_replicas=ceilings["auth-web"][1],
        target_utilisation=target,
        source=f"{login['machine']['cpu_model']}, {login['machine']['cpu_cores']} cores, "
        f"measured {login['machine']['measured_at'][:10]}",
    )


# ---- the plan ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePlan:
    name: str
    cpu_per_login: float
    cores: float  # CPU in use at the load
    pods: int
    utilisation: float  # of the pods' CPU requests
    p95_seconds: float | None  # the service's response p95 (model services)
    limited_by: str  # "latency", "utilisation" or "minimum" (the autoscaler's floor)
    cpu_request: float  # cores per pod


def plan_model_service(service: ModelService, rate: float, budget_seconds: float, target: float) -> ServicePlan:
    """The fewest pods that keep the service's p95 within ``budget_seconds`` and its pods at ``target`` CPU."""
    if service.service_p95_seconds > budget_seconds:
        raise ValueError(
            f"{service.name}'s own p95 ({service.service_p95_seconds * 1000:.0f} ms for one {service.method}) is "
            f"above the {budget_seconds * 1000:.0f} ms it may take: no pod count meets that p95; fewer frames or "
            "faster cores would"
        )
    cores = rate * service.cpu_per_login
    by_utilisation = math.ceil(cores / (service.cpu_request * target) - 1e-9)
    # A process serves one call at a time; each login makes one call, which takes service_seconds of wall time.
    by_latency = math.floor(rate * service.service_seconds) + 1
    while service.service_p95_seconds + wait_p95_seconds(by_latency, rate, service.service_seconds) > budget_seconds:
        by_latency += 1
    pods, limited_by = max(
        (by_latency, "latency"), (by_utilisation, "utilisation"), (service.min_replicas, "minimum"), key=lambda x: x[0]
    )
    p95 = service.service_p95_seconds + wait_p95_seconds(pods, rate, service.service_seconds)
    utilisation = cores / (pods * service.cpu_request)
    return ServicePlan(
        service.name, service.cpu_per_login, cores, pods, utilisation, p95, limited_by, service.cpu_request
    )


def plan(measurements: Measurements, rate: float, p95_target_seconds: float) -> list[ServicePlan]:
    """Pods per service for ``rate`` logins/s with the decision p95 within ``p95_target_seconds``."""
    if rate <= 0:
        raise ValueError("the login rate must be positive")
    budget = p95_target_seconds - measurements.overhead_p95_seconds
    if budget <= 0:
        raise ValueError(
            f"a p95 of {p95_target_seconds * 1000:.0f} ms leaves nothing for the model services: auth-web and the "
            f"gateway alone take {measurements.overhead_p95_seconds * 1000:.0f} ms"
        )
    target = measurements.target_utilisation
    plans = [plan_model_service(service, rate, budget, target) for service in measurements.model_services]
    request = measurements.auth_web_cpu_request
    cores = rate * measurements.auth_web_cpu_per_login
    pods, limited_by = max(
        (math.ceil(cores / (request * target) - 1e-9), "utilisation"),
        (measurements.auth_web_min_replicas, "minimum"),
        key=lambda x: x[0],
    )
    plans.append(
        ServicePlan(
            "auth-web",
            measurements.auth_web_cpu_per_login,
            cores,
            pods,
            cores / (pods * request),
            None,
            limited_by,
            request,
        )
    )
    return plans


def per_address_logins_per_second(env: Mapping[str, str]) -> tuple[float, str]:
    """The most logins per second one client address gets through the default (or ``env``'s) rate limits: the
    gateway counts the login page, the challenge and the attempt; auth-web counts the challenge and the attempt."""
    documented = dict(
        re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", (REPO_ROOT / "docs/configuration.md").read_text(), re.M)
    )

    def setting(name: str) -> str:
        return env.get(name) or documented[name]

    gateway = setting("GATEWAY_LOGIN_RATE")
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)r/([sm])", gateway).groups()  # type: ignore[union-attr]
    limits = [float(number) / (60 if unit == "m" else 1) / 3]
    seconds = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
    auth_web = setting("AUTH_RATE_LIMIT_LOGIN_PER_ADDRESS")
    for count, period in re.findall(r"(\d+)\s*(?:/|per)\s*(second|minute|hour|day)", auth_web):
        limits.append(int(count) / seconds[period] / 2)
    return min(limits), f"GATEWAY_LOGIN_RATE={gateway}, AUTH_RATE_LIMIT_LOGIN_PER_ADDRESS={auth_web}"


def ceilings(measurements: Measurements, env: Mapping[str, str]) -> list[tuple[str, float, str]]:
    """Logins per second at which each part runs out, with the prod overlay's autoscaler ceilings; lowest first."""
    target = measurements.target_utilisation
    limits = [
        (
            f"{service.name} ({service.max_replicas} pods at {target:.0%})",
            service.max_replicas * service.cpu_request * target / service.cpu_per_login,
            "raise maxReplicas in overlays/prod/autoscaling.yaml (and the nodes under it)",
        )
        for service in measurements.model_services
    ]
    limits.append(
        (
            f"auth-web ({measurements.auth_web_max_replicas} pods at {target:.0%})",
            measurements.auth_web_max_replicas
            * measurements.auth_web_cpu_request
            * target
            / measurements.auth_web_cpu_per_login,
            "raise maxReplicas; Postgres connections grow with it",
        )
    )
    pods_within_connections = POSTGRES_DEFAULT_CONNECTIONS // measurements.auth_web_connections_per_pod
    limits.append(
        (
            f"Postgres connections ({pods_within_connections} auth-web pods fill the default "
            f"max_connections={POSTGRES_DEFAULT_CONNECTIONS})",
            pods_within_connections * measurements.auth_web_cpu_request * target / measurements.auth_web_cpu_per_login,
            "raise max_connections or put PgBouncer in front",
        )
    )
    limits.append(
        (
            "Redis (one core: it runs commands on one thread)",
            1.0 / measurements.redis_cpu_per_login,
            "a faster core or fewer round trips per login; Redis Cluster shards keys",
        )
    )
    per_address, limits_in_force = per_address_logins_per_second(env)
    limits.append(
        (
            f"one client address (sustained; {limits_in_force})",
            per_address,
            "users behind one NAT or proxy address share it: raise both limits for that case",
        )
    )
    return sorted(limits, key=lambda entry: entry[1])


def report(measurements: Measurements, rate: float, p95_target_seconds: float, env: Mapping[str, str]) -> str:
    plans = plan(measurements, rate, p95_target_seconds)
    lines = [
        f"# Capacity for {rate:g} logins/s at a decision p95 <= {p95_target_seconds * 1000:.0f} ms "
        f"({measurements.frames} frames per login)",
        "",
        f"Measured on: {measurements.source} (bench/results/login_load.json at {measurements.measured_frames} frames, "
        "component_latency.json); pods as in deploy/kubernetes "
        f"(CPU requests, autoscalers at {measurements.target_utilisation:.0%}).",
        "",
        "| service | CPU-s/login | cores busy | pods | CPU of requests | p95 ms | pods set by |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in plans:
        p95 = f"{p.p95_seconds * 1000:.0f}" if p.p95_seconds is not None else "-"
        lines.append(
            f"| {p.name} | {p.cpu_per_login:.4f} | {p.cores:.2f} | {p.pods} | {p.utilisation:.0%} | {p95} | "
            f"{p.limited_by} |"
        )
    slowest = max(p.p95_seconds or 0 for p in plans)
    total_cores = sum(p.pods * p.cpu_request for p in plans)
    auth_web_pods = next(p.pods for p in plans if p.name == "auth-web")
    connections = auth_web_pods * measurements.auth_web_connections_per_pod
    lines += [
        "",
        f"Decision p95 ≈ {(slowest + measurements.overhead_p95_seconds) * 1000:.0f} ms (slower model service "
        f"{slowest * 1000:.0f} ms + auth-web/gateway {measurements.overhead_p95_seconds * 1000:.0f} ms). "
        f"CPU requested by these pods: {total_cores:.1f} cores; "
        f"gateway {rate * measurements.gateway_cpu_per_login:.2f} cores busy.",
        "",
        "| store | CPU-s/login | cores busy | note |",
        "|---|---|---|---|",
        f"| Postgres | {measurements.postgres_cpu_per_login:.4f} | {rate * measurements.postgres_cpu_per_login:.2f} | "
        f"up to {connections} connections ({auth_web_pods} auth-web pods x {measurements.auth_web_connections_per_pod}"
        f" = workers x threads); Postgres's default max_connections is {POSTGRES_DEFAULT_CONNECTIONS} |",
        f"| Redis | {measurements.redis_cpu_per_login:.4f} | {rate * measurements.redis_cpu_per_login:.2f} | "
        f"{rate * measurements.redis_cpu_per_login:.0%} of its one core |",
        "",
        "What runs out first (logins/s), with the prod overlay's autoscaler ceilings:",
        "",
        "| part | logins/s | what to do |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {limit:.3g} | {remedy} |" for name, limit, remedy in ceilings(measurements, env)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins-per-second", type=float, required=True)
    parser.add_argument("--p95-ms", type=float, default=1500.0, help="decision latency target (default 1500)")
    parser.add_argument("--frames", type=int, default=15, help="frames per login (AUTH_CAPTURE_FRAMES, default 15)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the bench results")
    args = parser.parse_args(argv)
    if not 1 <= args.frames <= 32:
        parser.error("--frames must be between 1 and 32")
    try:
        measurements = load_measurements(args.frames, args.results)
        print(report(measurements, args.logins_per_second, args.p95_ms / 1000, os.environ))
    except ValueError as error:
        print(f"capacity: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
