"""Memory under sustained login load: does every process's resident memory stop growing?

Logins run through the gateway for ``--duration`` seconds (default 10 minutes) with enough concurrent
virtual users to keep both cores busy (``--concurrency``, default 8: auth-web's 2 workers × 4 threads
each have a login in flight), using the login driver of :mod:`bench.login_load` (the same scenario,
captures, bench user and flow). Every ``--interval`` seconds (default 10) each process of each service
is found again by its listening port (:mod:`bench.processes`: the gRPC supervisor and its forked
workers, the gunicorn master and its workers, the nginx master and its workers) and its RSS read from
``/proc/<pid>/status`` (``VmRSS``).

Per process, and per service (the sum of its processes): RSS at the start, after the warm-up, at the end,
and the growth rate of the first and the last half of the run (least-squares slope, MB per minute).
A process **flattens** when its last-half slope is below ``--flat-mb-per-minute`` (default 1 MB/min,
i.e. under 10 MB over the last 5 minutes of a 10-minute soak, which is within the jitter of a busy
Python process's heap); a service flattens when each of its processes does.

Results: ``results/<name>.json`` (every sample), ``results/<name>.md`` (tables) and ``results/<name>.png``
(one line per process, RSS over time, one panel and one colour family per service).

    .venv/bin/python -m bench.memory_soak --base-url https://127.0.0.1:8453 --liveness 127.0.0.1:50061 \\
        --recognition 127.0.0.1:50062 --auth-web-port 8010 [--duration 600] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import login_load, processes, report
from bench.frames import DEFAULT_CLIP, describe

FLAT_MB_PER_MINUTE = 1.0
#: Matplotlib colour maps, one family per service: a service's processes are shades of one colour.
SERVICE_COLOUR_MAPS = {"gateway": "Greens", "auth-web": "Purples", "liveness": "Blues", "recognition": "Oranges"}

Point = tuple[float, float]  # (seconds since the load started, RSS MB)


# ---------------------------------------------------------------------------------------------------------
# The arithmetic (pure; tests/unit/test_bench_stats.py)


def slope_mb_per_minute(points: Sequence[Point]) -> float | None:
    """Least-squares slope of RSS over time in MB per minute; None with fewer than 3 points or no time spread."""
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return covariance / spread * 60.0


def split_halves(points: Sequence[Point], start: float, end: float) -> tuple[list[Point], list[Point]]:
    """The points of the first and of the last half of the window [start, end] (the midpoint goes to both)."""
    middle = (start + end) / 2.0
    return [p for p in points if p[0] <= middle], [p for p in points if p[0] >= middle]


def value_after(points: Sequence[Point], seconds: float) -> float | None:
    """The first sample taken at or after ``seconds`` (None when there is none)."""
    for t, value in points:
        if t >= seconds:
            return value
    return None


def verdict(last_half_slope: float | None, flat_mb_per_minute: float = FLAT_MB_PER_MINUTE) -> str:
    """``flattens`` when the last half grows slower than the criterion, ``grows`` otherwise, ``too short``
    when the last half has too few samples to fit a slope."""
    if last_half_slope is None:
        return "too short"
    return "flattens" if last_half_slope < flat_mb_per_minute else "grows"


def analyse_points(
    points: Sequence[Point], window: tuple[float, float], warmup: float, flat_mb_per_minute: float = FLAT_MB_PER_MINUTE
) -> dict[str, object]:
    """Start / after warm-up / end / max RSS and the two halves' slopes of one series."""
    ordered = sorted(points)
    if not ordered:
        return {"samples": 0, "verdict": "too short"}
    first, last = split_halves(ordered, *window)
    first_slope, last_slope = slope_mb_per_minute(first), slope_mb_per_minute(last)
    return {
        "samples": len(ordered),
        "first_seen_s": round(ordered[0][0], 1),
        "last_seen_s": round(ordered[-1][0], 1),
        "start_mb": round(ordered[0][1], 1),
        "after_warmup_mb": _rounded(value_after(ordered, window[0] + warmup)),
        "end_mb": round(ordered[-1][1], 1),
        "max_mb": round(max(v for _, v in ordered), 1),
        "first_half_mb_per_min": _rounded(first_slope, 2),
        "last_half_mb_per_min": _rounded(last_slope, 2),
        "verdict": verdict(last_slope, flat_mb_per_minute),
    }


def service_verdict(process_verdicts: Sequence[str]) -> str:
    """A service flattens when each of its processes does; one growing process makes it grow."""
    if "grows" in process_verdicts:
        return "grows"
    if process_verdicts and all(v == "flattens" for v in process_verdicts):
        return "flattens"
    return "too short"


def service_totals(series: Mapping[int, Sequence[Point]]) -> list[Point]:
    """The service's RSS at each sample time: the sum over the processes sampled at that time."""
    totals: dict[float, float] = {}
    for points in series.values():
        for t, value in points:
            totals[t] = totals.get(t, 0.0) + value
    return sorted(totals.items())


# ---------------------------------------------------------------------------------------------------------
# Sampling


@dataclass
class ProcessSeries:
    service: str
    pid: int
    role: str
    command: str
    points: list[Point] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.service} {self.role} {self.pid}"


class RssSampler:
    """Every ``interval`` seconds: find each service's processes by port again, read their RSS."""

    def __init__(self, ports: Mapping[str, int], interval: float, started: float) -> None:
        self.ports = dict(ports)
        self.interval = interval
        self.started = started
        self.series: dict[tuple[str, int], ProcessSeries] = {}
        self.pids: dict[str, set[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        seconds = time.perf_counter() - self.started
        self.pids = processes.discover(self.ports)
        for service, rss_by_pid in processes.rss_snapshot(self.pids).items():
            for pid, rss_mb in rss_by_pid.items():
                key = (service, pid)
                if key not in self.series:
                    info = processes.read_process(pid)
                    role = processes.process_role(info, self.pids[service]) if info else "worker"
                    self.series[key] = ProcessSeries(service, pid, role, info.cmdline[:120] if info else "")
                self.series[key].points.append((round(seconds, 1), rss_mb))

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        ticks = 1
        while not self._stop.wait(max(0.0, self.started + ticks * self.interval - time.perf_counter())):
            self.sample()
            ticks += 1


# ---------------------------------------------------------------------------------------------------------
# Report


def analyse(
    series: Sequence[ProcessSeries], duration: float, warmup: float, flat_mb_per_minute: float
) -> dict[str, dict[str, object]]:
    window = (0.0, duration)
    services: dict[str, dict[str, object]] = {}
    for name in dict.fromkeys(s.service for s in series):
        mine = [s for s in series if s.service == name]
        per_process = [
            {"pid": s.pid, "role": s.role, **analyse_points(s.points, window, warmup, flat_mb_per_minute)} for s in mine
        ]
        total = analyse_points(service_totals({s.pid: s.points for s in mine}), window, warmup, flat_mb_per_minute)
        total.pop("verdict")  # the verdict is per process (the criterion is per process)
        services[name] = {
            "processes": len(mine),
            "total": total,
            "by_process": per_process,
            "verdict": service_verdict([str(p["verdict"]) for p in per_process]),
        }
    return services


def plot(series: Sequence[ProcessSeries], path: Path, title: str, warmup: float, duration: float) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the PNG only
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(s.service for s in series))
    columns = 2
    rows = max(1, (len(names) + columns - 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(13, 4.2 * rows), sharex=True, squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        mine = sorted((s for s in series if s.service == name), key=lambda s: (s.role != "supervisor", s.pid))
        colour_map = plt.get_cmap(SERVICE_COLOUR_MAPS.get(name, "Greys"))
        for index, process in enumerate(mine):
            shade = 0.9 - 0.5 * index / max(1, len(mine) - 1) if len(mine) > 1 else 0.8
            minutes = [t / 60.0 for t, _ in process.points]
            axis.plot(
                minutes,
                [v for _, v in process.points],
                color=colour_map(shade),
                linewidth=1.6,
                marker="." if len(process.points) < 80 else None,
                label=f"{process.role} {process.pid}",
            )
        axis.axvline(warmup / 60.0, color="grey", linestyle=":", linewidth=1)
        axis.axvline(duration / 120.0, color="grey", linestyle="--", linewidth=1)
        axis.set_title(name)
        axis.set_ylabel("RSS (MB)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    for axis in axes.flat[len(names) :]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("minutes of load (dotted: end of warm-up, dashed: half-time)")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown_body(data: Mapping[str, object], services: Mapping[str, Mapping[str, object]], png_name: str) -> str:
    load = data["load"]
    settings = data["settings"]
    assert isinstance(load, Mapping) and isinstance(settings, Mapping)
    criterion = settings["flat_mb_per_minute"]
    lines = [
        f"{load['concurrency']} virtual users logging in through the gateway for {load['duration_seconds']} s "
        f"(the login flow of `bench.login_load`), RSS of every process of every service sampled every "
        f"{settings['interval_seconds']} s (`VmRSS` of `/proc/<pid>/status`; processes found by their listening port). "
        f"{load['logins_completed']} logins completed ({load['logins_accepted']} accepted, {load['errors']} errors), "
        f"{load['throughput_logins_per_second']} logins/s; the stack used {data['stack_cpu_share']} of the "
        f"machine's {data['cpu_cores']} cores (CPU-s / wall / cores), the load generator "
        f"{load['load_generator_cpu_seconds']} CPU-s.",
        "",
        f"**Criterion:** a process *flattens* when the least-squares slope of its RSS over the last half of the run "
        f"is below {criterion} MB/min; a service flattens when each of its processes does. "
        f"Warm-up: the first {settings['warmup_seconds']} s.",
        "",
        "Per service (RSS summed over its processes):",
        "",
        report.markdown_table(
            ["service", "processes", *RSS_COLUMNS, "verdict"],
            [
                [name, service["processes"], *_rss_cells(service["total"]), f"**{service['verdict']}**"]  # type: ignore[arg-type]
                for name, service in services.items()
            ],
        ),
        "",
        "Per process:",
        "",
        report.markdown_table(
            ["service", "role", "pid", *RSS_COLUMNS, "verdict"],
            [
                [name, process["role"], process["pid"], *_rss_cells(process), process["verdict"]]
                for name, service in services.items()
                for process in service["by_process"]  # type: ignore[attr-defined]
            ],
        ),
        "",
        f"![RSS per process over the soak]({png_name})",
    ]
    return "\n".join(lines)


RSS_COLUMNS = ("start MB", "after warm-up MB", "end MB", "max MB", "first half MB/min", "last half MB/min")
_RSS_KEYS = ("start_mb", "after_warmup_mb", "end_mb", "max_mb", "first_half_mb_per_min", "last_half_mb_per_min")


def _rss_cells(summary: dict[str, object]) -> list[object]:
    return [summary.get(key) for key in _RSS_KEYS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="https://127.0.0.1:8443", help="the gateway")
    parser.add_argument("--liveness", default="127.0.0.1:50051")
    parser.add_argument("--recognition", default="127.0.0.1:50052")
    parser.add_argument("--auth-web-port", type=int, default=8000, help="to find auth-web's processes")
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--concurrency", type=int, default=8, help="virtual users (enough to keep 2 cores busy)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds reported as warm-up")
    parser.add_argument("--flat-mb-per-minute", type=float, default=FLAT_MB_PER_MINUTE)
    parser.add_argument("--note", default="")
    parser.add_argument("--name", default="memory_soak")
    args = parser.parse_args(argv)

    machine = report.machine_details(contention_note=args.note)
    plan = login_load.prepare_load(args.base_url, args.liveness, args.recognition, args.clip)
    ports = login_load.service_ports(args.base_url, args.auth_web_port, args.liveness, args.recognition, shared=False)

    started = time.perf_counter()
    sampler = RssSampler(ports, args.interval, started)
    sampler.start()
    missing = [name for name, pids in sampler.pids.items() if not pids]
    if missing:
        print(f"warning: no process found listening for {missing}; their memory is not sampled", flush=True)
    cpu_before = processes.cpu_snapshot(sampler.pids)
    client_before = login_load.load_generator_cpu_seconds()
    print(f"soak: {args.concurrency} clients for {args.duration:.0f} s, RSS every {args.interval:.0f} s", flush=True)
    try:
        level = asyncio.run(
            login_load.run_level(
                args.base_url,
                args.concurrency,
                args.duration,
                plan.username,
                plan.password,
                plan.captures,
                plan.actions,
            )
        )
    finally:
        sampler.stop()
    cpu = processes.cpu_delta(cpu_before, processes.cpu_snapshot(sampler.pids))
    load = login_load.summarise_level(level, cpu, login_load.load_generator_cpu_seconds() - client_before)
    cores = os.cpu_count() or 1
    order = list(ports)
    series = sorted(sampler.series.values(), key=lambda s: (order.index(s.service), s.role != "supervisor", s.pid))
    services = analyse(series, level.duration, args.warmup, args.flat_mb_per_minute)
    per_minute: dict[int, int] = {}
    for sample in level.samples:
        if sample.status and not sample.error:
            minute = int((sample.started - started) // 60)
            per_minute[minute] = per_minute.get(minute, 0) + 1

    data: dict[str, object] = {
        "benchmark": "memory_soak",
        "machine": machine,
        "base_url": args.base_url,
        "clip": args.clip,
        "frames": describe(plan.scenario.frames),
        "captures_in_rotation": len(plan.captures),
        "settings": {
            "concurrency": args.concurrency,
            "duration_seconds": args.duration,
            "interval_seconds": args.interval,
            "warmup_seconds": args.warmup,
            "flat_mb_per_minute": args.flat_mb_per_minute,
        },
        "cpu_cores": cores,
        "stack_cpu_share": round(sum(cpu.values()) / (level.duration * cores), 2) if level.duration else None,
        "load": load,
        "logins_completed_per_minute": [per_minute.get(m, 0) for m in range(max(per_minute, default=-1) + 1)],
        "services": services,
        "samples": [
            {"service": s.service, "pid": s.pid, "role": s.role, "command": s.command, "points": s.points}
            for s in series
        ],
    }
    png_path = report.RESULTS_DIR / f"{args.name}.png"
    report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(series, png_path, f"RSS per process, {args.concurrency} clients logging in", args.warmup, level.duration)
    body = markdown_body(data, services, png_path.name)
    json_path, md_path = report.write_result(args.name, "Memory under sustained login load", data, body)
    print(body)
    print(json.dumps({name: service["verdict"] for name, service in services.items()}))
    print(f"wrote {json_path}, {md_path} and {png_path}")
    return 0


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


if __name__ == "__main__":
    raise SystemExit(main())
