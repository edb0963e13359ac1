"""The local run with several workers per model service: each worker gets its own port (``*_WORKER_PORTS_FROM``,
by default 50061.. for liveness and 50071.. for recognition), auth-web's target lists those ports, and the
readiness probe waits for the shared port and every worker's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from localrun import services as services_module
from localrun.network import check_ports, grpc_target
from localrun.services import child_environment, service_commands
from localrun.settings import RunError, RunSettings


def settings(tmp_path: Path, **env: str) -> RunSettings:
    return RunSettings.from_env({"FACEAUTH_VAR_DIR": str(tmp_path), **env})


def child_env(run_settings: RunSettings, **env: str) -> dict[str, str]:
    return child_environment(env, run_settings, database_url="sqlite:///x", redis_url="redis://r/0", use_gateway=True)


def test_one_worker_keeps_the_shared_port(tmp_path: Path) -> None:
    run_settings = settings(tmp_path)
    assert run_settings.liveness_worker_addresses == run_settings.recognition_worker_addresses == []
    child = child_env(run_settings)
    assert child["LIVENESS_TARGET"] == "127.0.0.1:50051"
    assert child["RECOGNITION_TARGET"] == "127.0.0.1:50052"
    assert child["LIVENESS_WORKER_PORTS_FROM"] == child["RECOGNITION_WORKER_PORTS_FROM"] == "0"


def test_several_workers_get_their_own_ports_and_auth_web_the_list(tmp_path: Path) -> None:
    run_settings = settings(tmp_path, LIVENESS_WORKERS="2", RECOGNITION_WORKERS="3", RECOGNITION_LISTEN="0.0.0.0:7002")
    assert run_settings.liveness_worker_addresses == ["127.0.0.1:50061", "127.0.0.1:50062"]
    assert run_settings.recognition_worker_addresses == ["0.0.0.0:50071", "0.0.0.0:50072", "0.0.0.0:50073"]
    child = child_env(run_settings)
    assert child["LIVENESS_WORKER_PORTS_FROM"] == "50061"
    assert child["RECOGNITION_WORKER_PORTS_FROM"] == "50071"
    assert child["LIVENESS_TARGET"] == "127.0.0.1:50061,127.0.0.1:50062"
    assert child["RECOGNITION_TARGET"] == "127.0.0.1:50071,127.0.0.1:50072,127.0.0.1:50073"  # the wildcard on loopback
    # A target the caller sets still wins.
    assert child_env(run_settings, LIVENESS_TARGET="127.0.0.1:9")["LIVENESS_TARGET"] == "127.0.0.1:9"


def test_the_caller_chooses_the_ports_or_turns_them_off(tmp_path: Path) -> None:
    chosen = settings(tmp_path, LIVENESS_WORKERS="2", LIVENESS_WORKER_PORTS_FROM="6100")
    assert child_env(chosen)["LIVENESS_TARGET"] == "127.0.0.1:6100,127.0.0.1:6101"
    off = settings(tmp_path, LIVENESS_WORKERS="2", LIVENESS_WORKER_PORTS_FROM="0")
    assert off.liveness_worker_addresses == []
    assert child_env(off)["LIVENESS_TARGET"] == "127.0.0.1:50051"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVENESS_WORKERS": "2", "LIVENESS_WORKER_PORTS_FROM": "50050"}, "include the listen port 50051"),
        ({"RECOGNITION_WORKERS": "4", "RECOGNITION_WORKER_PORTS_FROM": "65534"}, "past 65535"),
        ({"LIVENESS_WORKERS": "65"}, "LIVENESS_WORKERS"),
    ],
)
def test_unusable_worker_ports_are_a_clear_error(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(RunError, match=message):
        settings(tmp_path, **env)


def test_a_host_name_cannot_be_listed(tmp_path: Path) -> None:
    """auth-web takes a list of addresses of one IP only (the certificate names it): a clear error, not a
    target auth-web refuses later."""
    run_settings = settings(tmp_path, LIVENESS_WORKERS="2", LIVENESS_LISTEN="localhost:7001")
    with pytest.raises(RunError, match="must listen on an IP address"):
        child_env(run_settings)
    assert grpc_target("[::]:7001", ["[::]:7100", "[::]:7101"]) == "[::1]:7100,[::1]:7101"


def test_overlapping_worker_ranges_are_refused_before_anything_starts(tmp_path: Path) -> None:
    # 12 liveness workers reach 50072, inside recognition's 50071.. range.
    run_settings = settings(tmp_path, LIVENESS_WORKERS="12", RECOGNITION_WORKERS="2")
    with pytest.raises(RunError, match="port 50071 is wanted by both LIVENESS_WORKER_PORTS_FROM and RECOGNITION_"):
        check_ports(run_settings, use_gateway=False)


def test_readiness_waits_for_every_worker_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serving = {"127.0.0.1:50051", "127.0.0.1:50061"}  # worker 1 still loads its model
    probed: list[str] = []

    def probe(address: str, _settings: RunSettings) -> bool:
        probed.append(address)
        return address in serving

    monkeypatch.setattr(services_module, "grpc_serving", probe)
    liveness = service_commands(settings(tmp_path, LIVENESS_WORKERS="2"))[0]
    assert not liveness.ready()
    assert probed == ["127.0.0.1:50051", "127.0.0.1:50061", "127.0.0.1:50062"]
    serving.add("127.0.0.1:50062")
    assert liveness.ready()
    recognition = service_commands(settings(tmp_path))[1]
    probed.clear()
    recognition.ready()
    assert probed == ["127.0.0.1:50052"]  # one worker: the shared port alone
