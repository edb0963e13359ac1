"""Statistics, machine details and result files shared by every benchmark.

Each benchmark writes ``bench/results/<name>.json`` (everything, machine details included) and
``bench/results/<name>.md`` (a Markdown table a person reads), via :func:`write_result`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Distributions whose versions decide the numbers.
VERSIONED_PACKAGES = (
    "tensorflow-cpu",
    "tensorflow",
    "ai-edge-litert",
    "keras",
    "dlib-bin",
    "dlib",
    "face-recognition",
    "grpcio",
    "opencv-python-headless",
    "numpy",
    "gunicorn",
    "flask",
    "httpx",
)

#: Settings of the stack that change throughput; recorded with every result.
STACK_SETTING_PREFIXES = (
    "RECOGNITION_",
    "LIVENESS_",
    "AUTH_WEB_",
    "AUTH_FACTORS",
    "AUTH_CHALLENGE",
    "AUTH_RATE_LIMIT",
    "AUTH_LOCKOUT",
    "AUTH_THROTTLE",
    "GATEWAY_LOGIN",
)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolation percentile (numpy's default method); ``fraction`` in [0, 1]."""
    if not values:
        return math.nan
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], got {fraction}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = math.ceil(position)
    if lower == upper:
        return float(ordered[lower])
    return float(ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower))


def summarise_ms(seconds: Iterable[float]) -> dict[str, float | int]:
    """Count, mean, median, p95, p99 and max of durations given in seconds, reported in milliseconds."""
    values = [value * 1000.0 for value in seconds]
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean_ms": round(sum(values) / len(values), 1),
        "median_ms": round(percentile(values, 0.5), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "p99_ms": round(percentile(values, 0.99), 1),
        "max_ms": round(max(values), 1),
        "min_ms": round(min(values), 1),
    }


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; floats keep their given rounding, None prints as a dash."""

    def cell(value: object) -> str:
        if value is None:
            return "–"
        if isinstance(value, float) and math.isnan(value):
            return "–"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def machine_details(stack_env: Mapping[str, str] | None = None, contention_note: str = "") -> dict[str, object]:
    """What the numbers were measured on: CPU, cores, load, versions, the stack's worker settings."""
    environment = stack_env if stack_env is not None else os.environ
    settings = {
        key: value
        for key, value in sorted(environment.items())
        if key.startswith(STACK_SETTING_PREFIXES) and "SECRET" not in key
    }
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_at_start": load_average(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "stack_settings": settings,
        "contention_note": contention_note,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def machine_markdown(machine: Mapping[str, object]) -> str:
    packages = machine.get("packages", {})
    versions = ", ".join(f"{name} {version}" for name, version in dict(packages).items())  # type: ignore[arg-type]
    settings = ", ".join(f"{key}={value}" for key, value in dict(machine.get("stack_settings", {})).items())  # type: ignore[arg-type]
    lines = [
        f"- Machine: {machine.get('cpu_model')}, {machine.get('cpu_cores')} cores, "
        f"load average at start {machine.get('load_average_at_start')}, Python {machine.get('python')}",
        f"- Versions: {versions}",
        f"- Stack settings: {settings or '(defaults)'}",
        f"- Measured: {machine.get('measured_at')}",
    ]
    if machine.get("contention_note"):
        lines.append(f"- **Note:** {machine['contention_note']}")
    return "\n".join(lines)


def write_result(name: str, title: str, data: Mapping[str, object], markdown_body: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md``; returns both paths."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{name}.json"
    md_path = RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    machine = data.get("machine")
    parts = [f"# {title}", ""]
    if isinstance(machine, Mapping):
        parts += [machine_markdown(machine), ""]
    parts += [markdown_body.rstrip(), ""]
    md_path.write_text("\n".join(parts))
    return json_path, md_path
