"""The targets, checked against the latest results: ``results/summary<suffix>.json|md``.

Targets (issue 8, for a 2-core machine):
  - server-side login decision p95 ≤ 400 ms for 8 frames at concurrency 1;
  - ≤ 0.5 CPU-seconds per 8-frame login (all service processes together);
  - throughput at concurrency 4 within 80 % of the CPU bound (cores / CPU-seconds per login), no errors;
  - ≥ 5× faster per frame than the old pipeline.

    .venv/bin/python -m bench.summary [--suffix _contended]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench import report

TARGET_P95_MS = 400.0
TARGET_CPU_PER_LOGIN = 0.5
TARGET_BOUND_FRACTION = 0.8
TARGET_SPEEDUP = 5.0
TARGET_CORES = 2


def _load(name: str) -> dict[str, Any] | None:
    path = report.RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _level(load: dict[str, Any], concurrency: int) -> dict[str, Any] | None:
    return next((level for level in load["levels"] if level["concurrency"] == concurrency), None)


def evaluate(
    load: dict[str, Any] | None, old: dict[str, Any] | None, cores: int = TARGET_CORES
) -> list[dict[str, Any]]:
    """One row per target: what was measured, the target, met or not, and by how much it was missed."""
    rows: list[dict[str, Any]] = []

    def row(target: str, measured: float | None, wanted: str, met: bool | None, detail: str) -> None:
        rows.append({"target": target, "measured": measured, "wanted": wanted, "met": met, "detail": detail})

    one = _level(load, 1) if load else None
    four = _level(load, 4) if load else None
    if one and one["decision_latency"].get("n"):
        p95 = one["decision_latency"]["p95_ms"]
        row(
            "decision p95, 8 frames, 1 client",
            p95,
            f"≤ {TARGET_P95_MS:.0f} ms",
            p95 <= TARGET_P95_MS,
            f"{p95 / TARGET_P95_MS:.2f}× the target" if p95 > TARGET_P95_MS else "",
        )
    else:
        row("decision p95, 8 frames, 1 client", None, f"≤ {TARGET_P95_MS:.0f} ms", None, "no login_load result")
    cpu_level = four or one
    cpu = cpu_level.get("cpu_seconds_per_login_app") if cpu_level else None
    if cpu:
        row(
            f"CPU-s per login (gateway+auth-web+liveness+recognition, {cpu_level['concurrency']} clients)",  # type: ignore[index]
            cpu,
            f"≤ {TARGET_CPU_PER_LOGIN}",
            cpu <= TARGET_CPU_PER_LOGIN,
            f"{cpu / TARGET_CPU_PER_LOGIN:.2f}× the target" if cpu > TARGET_CPU_PER_LOGIN else "",
        )
    else:
        row("CPU-s per login", None, f"≤ {TARGET_CPU_PER_LOGIN}", None, "no login_load result")
    if four and cpu:
        bound = cores / cpu
        throughput = four["throughput_logins_per_second"]
        fraction = throughput / bound
        met = fraction >= TARGET_BOUND_FRACTION and four["errors"] == 0
        row(
            "throughput at 4 clients vs CPU bound",
            round(throughput, 3),
            f"≥ {TARGET_BOUND_FRACTION:.0%} of {bound:.2f}/s, 0 errors",
            met,
            f"{fraction:.0%} of the bound, {four['errors']} errors",
        )
    else:
        row("throughput at 4 clients vs CPU bound", None, "", None, "no 4-client level")
    if old:
        ratio = old["ratio_wall_per_frame"]
        row(
            "per-frame speed-up over the old pipeline (wall)",
            ratio,
            f"≥ {TARGET_SPEEDUP:.0f}×",
            ratio >= TARGET_SPEEDUP,
            f"CPU-time ratio {old['ratio_cpu_per_frame']}×",
        )
    else:
        row("per-frame speed-up over the old pipeline", None, f"≥ {TARGET_SPEEDUP:.0f}×", None, "no old_vs_new result")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suffix", default="", help="the result-name suffix used by run_all.sh (BENCH_SUFFIX)")
    parser.add_argument("--cores", type=int, default=TARGET_CORES)
    args = parser.parse_args(argv)
    load = _load(f"login_load{args.suffix}")
    old = _load(f"old_vs_new{args.suffix}")
    rows = evaluate(load, old, args.cores)
    machine = (load or old or {}).get("machine") or report.machine_details()
    data = {"benchmark": "summary", "machine": machine, "targets": rows}
    marks = {True: "met", False: "**missed**", None: "not measured"}
    table = report.markdown_table(
        ["target", "measured", "wanted", "result", "detail"],
        [[r["target"], r["measured"], r["wanted"], marks[r["met"]], r["detail"]] for r in rows],
    )
    json_path, md_path = report.write_result(f"summary{args.suffix}", "Benchmark targets", data, table)
    print(table)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
