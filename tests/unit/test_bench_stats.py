"""The benchmark helpers that turn measurements into reported numbers (bench/report.py, processes.py, summary.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench import processes, report, summary
from bench.frames import Frame, relative_times, windows


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.95, 0.99, 1.0])
def test_percentile_matches_numpy_linear(fraction: float) -> None:
    values = [0.31, 0.12, 0.5, 0.27, 0.9, 0.11, 0.45, 0.3, 0.29, 1.7, 0.33]
    assert report.percentile(values, fraction) == pytest.approx(float(np.percentile(values, fraction * 100)))


def test_percentile_edge_cases() -> None:
    assert report.percentile([0.2], 0.95) == 0.2
    assert np.isnan(report.percentile([], 0.5))
    with pytest.raises(ValueError):
        report.percentile([1.0], 1.5)


def test_summarise_ms_converts_seconds_to_milliseconds() -> None:
    stats = report.summarise_ms([0.1, 0.2, 0.3, 0.4])
    assert stats["n"] == 4
    assert stats["median_ms"] == 250.0
    assert stats["max_ms"] == 400.0
    assert stats["min_ms"] == 100.0
    assert stats["p95_ms"] == pytest.approx(385.0)
    assert report.summarise_ms([]) == {"n": 0}


def test_markdown_table_escapes_pipes_and_marks_missing_values() -> None:
    table = report.markdown_table(["a", "b"], [["x|y", None], [1.5, float("nan")]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | – |", "| 1.5 | – |"]


def test_cpu_delta_counts_new_processes_and_ignores_vanished_ones() -> None:
    before = {"svc": {1: 10.0, 2: 5.0}}
    after = {"svc": {1: 12.5, 3: 0.5}}  # pid 2 exited, pid 3 was forked during the batch
    assert processes.cpu_delta(before, after) == {"svc": 3.0}


def test_read_process_reports_our_own_cpu_time() -> None:
    info = processes.read_process(os.getpid())
    assert info is not None
    assert info.ppid == os.getppid()
    assert info.cpu_seconds > 0
    assert processes.read_process(2**22 + 12345) is None  # beyond pid_max: no such process


def test_windows_and_relative_times() -> None:
    frames = [Frame(jpeg=b"", time_ms=1000 + index * 167, index=index) for index in range(10)]
    captured = windows(frames, 8, 2)
    assert [window[0].index for window in captured] == [0, 2]
    assert relative_times(captured[1]) == [index * 167 for index in range(8)]


def _load(p95: float, cpu: float, throughput: float, errors: int = 0) -> dict[str, object]:
    def level(concurrency: int) -> dict[str, object]:
        return {
            "concurrency": concurrency,
            "decision_latency": {"n": 10, "p95_ms": p95},
            "cpu_seconds_per_login_app": cpu,
            "throughput_logins_per_second": throughput,
            "errors": errors,
        }

    return {"levels": [level(1), level(4)]}


def test_summary_targets_met() -> None:
    rows = summary.evaluate(
        _load(p95=240.0, cpu=0.2, throughput=9.0), {"ratio_wall_per_frame": 16.0, "ratio_cpu_per_frame": 11.0}
    )
    assert [row["met"] for row in rows] == [True, True, True, True]
    bound_row = rows[2]
    assert bound_row["detail"].startswith("90% of the bound")  # 9.0 / (2 / 0.2)


def test_summary_targets_missed_and_by_how_much() -> None:
    rows = summary.evaluate(
        _load(p95=375.0, cpu=0.5, throughput=3.8, errors=2), {"ratio_wall_per_frame": 9.0, "ratio_cpu_per_frame": 6.0}
    )
    assert [row["met"] for row in rows] == [False, False, False, False]
    assert rows[0]["detail"] == "1.50× the target"
    assert rows[1]["detail"] == "2.00× the target"
    assert "2 errors" in rows[2]["detail"]  # 95 % of the bound, but errors fail the target


def test_summary_without_results() -> None:
    rows = summary.evaluate(None, None)
    assert all(row["met"] is None for row in rows)
