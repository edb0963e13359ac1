"""The memory soak's arithmetic (bench/memory_soak.py) and RSS reading (bench/processes.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench import memory_soak, processes

# What /proc/<pid>/status looks like (Linux 6.x), trimmed; VmRSS is in kB.
_STATUS = """Name:\tpython
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
PPid:\t4200
VmPeak:\t 2363136 kB
VmSize:\t 2363136 kB
VmHWM:\t  911000 kB
VmRSS:\t  889288 kB
RssAnon:\t  700000 kB
Threads:\t23
"""


def test_vm_rss_is_read_from_the_status_text() -> None:
    assert processes.parse_vm_rss_kb(_STATUS) == 889288
    # Kernel threads have no VmRSS line (nor VmHWM, which must not be taken for it).
    assert processes.parse_vm_rss_kb("Name:\tkthreadd\nState:\tS (sleeping)\nVmHWM:\t 5 kB\n") is None


def test_read_rss_of_our_own_process_and_of_a_gone_one() -> None:
    rss = processes.read_rss_mb(os.getpid())
    assert rss is not None and 5 < rss < 100_000
    assert processes.read_rss_mb(2**22 + 12345) is None  # beyond pid_max: no such process
    snapshot = processes.rss_snapshot({"me": {os.getpid(), 2**22 + 12345}})
    assert list(snapshot["me"]) == [os.getpid()]


def test_role_is_supervisor_unless_the_parent_belongs_to_the_service() -> None:
    master = processes.ProcessInfo(pid=10, ppid=1, cmdline="gunicorn", cpu_seconds=0.0)
    worker = processes.ProcessInfo(pid=11, ppid=10, cmdline="gunicorn", cpu_seconds=0.0)
    assert processes.process_role(master, {10, 11}) == "supervisor"
    assert processes.process_role(worker, {10, 11}) == "worker"


def test_slope_is_the_least_squares_fit_in_mb_per_minute() -> None:
    times = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    values = [100.0, 101.5, 101.0, 103.0, 102.5, 104.0]
    expected = float(np.polyfit(times, values, 1)[0]) * 60.0
    assert memory_soak.slope_mb_per_minute(list(zip(times, values, strict=True))) == pytest.approx(expected)
    assert memory_soak.slope_mb_per_minute([(0.0, 1.0), (10.0, 2.0)]) is None  # too few points
    assert memory_soak.slope_mb_per_minute([(5.0, 1.0)] * 4) is None  # no time spread


def test_halves_share_the_midpoint_and_value_after_picks_the_first_sample_at_or_after() -> None:
    points = [(float(t), float(t)) for t in range(0, 70, 10)]
    first, last = memory_soak.split_halves(points, 0.0, 60.0)
    assert [t for t, _ in first] == [0.0, 10.0, 20.0, 30.0]
    assert [t for t, _ in last] == [30.0, 40.0, 50.0, 60.0]
    assert memory_soak.value_after(points, 25.0) == 30.0
    assert memory_soak.value_after(points, 61.0) is None


def test_growth_that_stops_flattens_and_steady_growth_does_not() -> None:
    # 10 minutes at one sample per 10 s: +30 MB/min for 3 minutes, then flat with jitter.
    times = [10.0 * index for index in range(61)]
    plateau = [min(t, 180.0) / 2.0 + (0.4 if index % 2 else -0.4) for index, t in enumerate(times)]
    leak = [2.0 * t / 60.0 for t in times]  # 2 MB/min throughout
    stops = memory_soak.analyse_points(list(zip(times, plateau, strict=True)), (0.0, 600.0), warmup=60.0)
    grows = memory_soak.analyse_points(list(zip(times, leak, strict=True)), (0.0, 600.0), warmup=60.0)
    assert stops["verdict"] == "flattens"
    assert stops["first_half_mb_per_min"] > 10
    assert abs(stops["last_half_mb_per_min"]) < 0.1  # type: ignore[arg-type]
    assert stops["after_warmup_mb"] == pytest.approx(30.0 - 0.4)
    assert grows["verdict"] == "grows"
    assert grows["last_half_mb_per_min"] == pytest.approx(2.0)
    assert grows["end_mb"] == pytest.approx(20.0)
    # A criterion of 3 MB/min tolerates it.
    loose = memory_soak.analyse_points(list(zip(times, leak, strict=True)), (0.0, 600.0), 60.0, 3.0)
    assert loose["verdict"] == "flattens"


def test_a_process_seen_only_early_is_too_short_to_judge() -> None:
    early = [(0.0, 50.0), (10.0, 60.0), (20.0, 70.0)]
    assert memory_soak.analyse_points(early, (0.0, 600.0), 60.0)["verdict"] == "too short"
    assert memory_soak.analyse_points([], (0.0, 600.0), 60.0)["verdict"] == "too short"


def test_service_verdict_and_totals() -> None:
    assert memory_soak.service_verdict(["flattens", "flattens"]) == "flattens"
    assert memory_soak.service_verdict(["flattens", "grows", "too short"]) == "grows"
    assert memory_soak.service_verdict(["flattens", "too short"]) == "too short"
    assert memory_soak.service_verdict([]) == "too short"
    totals = memory_soak.service_totals({1: [(0.0, 10.0), (10.0, 11.0)], 2: [(0.0, 5.0), (10.0, 6.0), (20.0, 7.0)]})
    assert totals == [(0.0, 15.0), (10.0, 17.0), (20.0, 7.0)]


def test_analyse_groups_processes_by_service() -> None:
    times = [10.0 * index for index in range(61)]
    series = [
        memory_soak.ProcessSeries("liveness", 1, "supervisor", "", [(t, 100.0) for t in times]),
        memory_soak.ProcessSeries("liveness", 2, "worker", "", [(t, 800.0 + t / 30.0) for t in times]),  # 2 MB/min
        memory_soak.ProcessSeries("gateway", 3, "supervisor", "", [(t, 5.0) for t in times]),
    ]
    services = memory_soak.analyse(series, 600.0, 60.0, 1.0)
    assert services["liveness"]["verdict"] == "grows"
    assert services["gateway"]["verdict"] == "flattens"
    assert services["liveness"]["total"]["start_mb"] == 900.0  # type: ignore[index]
    assert [p["verdict"] for p in services["liveness"]["by_process"]] == ["flattens", "grows"]  # type: ignore[union-attr]
