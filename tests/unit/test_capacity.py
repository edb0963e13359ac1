"""bench/capacity.py: the queueing formulas against known values, and the plan it prints for a login rate (from
bench/results and deploy/kubernetes): enough pods for the rate, the p95 within the target, clear refusals."""

from __future__ import annotations

import json
import math

import pytest

from bench import capacity


def test_erlang_c_matches_known_values() -> None:
    assert capacity.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: the chance to wait is the utilisation
    assert capacity.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert capacity.erlang_c(3, 0.0) == 0.0
    assert capacity.erlang_c(3, 3.0) == 1.0  # saturated: everyone waits
    many = capacity.erlang_c(500, 400.0)  # no factorial overflow
    assert 0.0 <= many < 0.01


def test_the_wait_p95_of_an_m_m_1_queue() -> None:
    # P(W > t) = rho * exp(-(mu - lambda) t): with rho = 0.5, S = 1 s, t95 = ln(0.5 / 0.05) / 0.5.
    assert capacity.wait_p95_seconds(1, 0.5, 1.0) == pytest.approx(math.log(10) / 0.5)
    assert capacity.wait_p95_seconds(10, 0.5, 1.0) == 0.0  # fewer than 5 % wait at all
    assert capacity.wait_p95_seconds(1, 1.0, 1.0) == math.inf


def test_interpolation_between_and_beyond_the_measured_frame_counts() -> None:
    points = {1: 0.1, 8: 0.8, 15: 1.5}
    assert capacity.interpolate(points, 8) == 0.8
    assert capacity.interpolate(points, 4) == pytest.approx(0.4)
    assert capacity.interpolate(points, 20) == pytest.approx(2.0)


@pytest.fixture(scope="module")
def measured() -> capacity.Measurements:
    return capacity.load_measurements(frames=15)


def test_measurements_come_from_the_bench_results_and_manifests(measured: capacity.Measurements) -> None:
    by_name = {s.name: s for s in measured.model_services}
    # At the bench's own 8 frames, each service's CPU per login is bench/results/login_load.json's (the largest
    # over its load levels); more frames cost more.
    login = json.loads((capacity.RESULTS / "login_load.json").read_text())
    eight = {s.name: s for s in capacity.load_measurements(frames=8).model_services}
    for name in ("liveness", "recognition"):
        recorded = max(level["cpu_seconds"][name] / level["logins_completed"] for level in login["levels"])
        assert eight[name].cpu_per_login == pytest.approx(recorded)
        assert by_name[name].cpu_per_login > eight[name].cpu_per_login
    assert min(s.cpu_per_login for s in measured.model_services) > measured.auth_web_cpu_per_login
    assert measured.target_utilisation == 0.7
    assert by_name["liveness"].cpu_request == 1.0 and measured.auth_web_cpu_request == 0.5
    assert 0 < measured.overhead_p95_seconds < 0.2


@pytest.mark.parametrize("rate", [1, 10, 50, 200])
def test_the_plan_carries_the_rate_within_the_target(measured: capacity.Measurements, rate: float) -> None:
    target = 1.5
    plans = {p.name: p for p in capacity.plan(measured, rate, target)}
    assert set(plans) == {"liveness", "recognition", "auth-web"}
    for p in plans.values():
        assert p.utilisation <= measured.target_utilisation + 1e-9, p  # the HPA would not add pods on top
        assert p.pods >= 3  # the prod overlay's floor
        assert p.pods * p.cpu_request * measured.target_utilisation >= rate * p.cpu_per_login - 1e-9
    slowest = max(plans["liveness"].p95_seconds, plans["recognition"].p95_seconds)
    assert slowest + measured.overhead_p95_seconds <= target


def test_more_logins_never_need_fewer_pods(measured: capacity.Measurements) -> None:
    previous: dict[str, int] = {}
    for rate in (1, 2, 5, 10, 20, 50, 100):
        pods = {p.name: p.pods for p in capacity.plan(measured, rate, 1.0)}
        assert all(pods[name] >= previous.get(name, 0) for name in pods)
        previous = pods


def test_a_tight_p95_is_met_with_more_pods_than_the_cpu_alone_needs(measured: capacity.Measurements) -> None:
    recognition = next(p for p in capacity.plan(measured, 20, 0.5) if p.name == "recognition")
    relaxed = next(p for p in capacity.plan(measured, 20, 5.0) if p.name == "recognition")
    assert recognition.p95_seconds is not None and recognition.p95_seconds <= 0.5 - measured.overhead_p95_seconds
    assert recognition.pods >= relaxed.pods


def test_an_impossible_target_is_refused_clearly(measured: capacity.Measurements) -> None:
    with pytest.raises(ValueError, match="no pod count meets that p95"):
        capacity.plan(measured, 5, 0.3)
    with pytest.raises(ValueError, match="leaves nothing"):
        capacity.plan(measured, 5, 0.05)
    with pytest.raises(ValueError, match="positive"):
        capacity.plan(measured, 0, 1.5)


def test_one_address_is_limited_by_the_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    default, _ = capacity.per_address_logins_per_second({})
    assert default == pytest.approx(200 / 3600 / 2)  # auth-web's 200/hour, two requests per login
    raised, text = capacity.per_address_logins_per_second(
        {"GATEWAY_LOGIN_RATE": "600r/m", "AUTH_RATE_LIMIT_LOGIN_PER_ADDRESS": "1000/minute"}
    )
    assert raised == pytest.approx(600 / 60 / 3)
    assert "600r/m" in text


def test_the_script_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert capacity.main(["--logins-per-second", "50"]) == 0
    out = capsys.readouterr().out
    for row in ("| liveness |", "| recognition |", "| auth-web |", "| Postgres |", "| Redis |", "runs out first"):
        assert row in out
    assert capacity.main(["--logins-per-second", "5", "--p95-ms", "200"]) == 2
    assert "capacity:" in capsys.readouterr().err
