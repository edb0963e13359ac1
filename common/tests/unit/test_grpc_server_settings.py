"""``ServerSettings.from_env``'s worker ports: off by default, worker k on ``{PREFIX}_WORKER_PORTS_FROM`` + k on the
listen host, and refused with a message naming the variable when they cannot work."""

from __future__ import annotations

import socket

import pytest

from faceauth_common.grpc_server import ServerSettings, _port_is_free, worker_addresses
from faceauth_common.settings import SettingsError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for suffix in ("LISTEN", "WORKERS", "WORKER_PORTS_FROM", "METRICS_LISTEN"):
        monkeypatch.delenv(f"DEMO_{suffix}", raising=False)


def settings(monkeypatch: pytest.MonkeyPatch, **values: str) -> ServerSettings:
    for suffix, value in values.items():
        monkeypatch.setenv(f"DEMO_{suffix.upper()}", value)
    return ServerSettings.from_env("DEMO", "127.0.0.1:50051", "127.0.0.1:9101")


def test_worker_ports_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    read = settings(monkeypatch, workers="2")
    assert read.worker_ports_from == 0
    assert read.worker_addresses == []


def test_each_worker_gets_the_next_port_on_the_listen_host(monkeypatch: pytest.MonkeyPatch) -> None:
    read = settings(monkeypatch, listen="0.0.0.0:6000", workers="3", worker_ports_from="6101")
    assert read.worker_addresses == ["0.0.0.0:6101", "0.0.0.0:6102", "0.0.0.0:6103"]
    assert worker_addresses("[::]:6000", 2, 7000) == ["[::]:7000", "[::]:7001"]
    # One process is worker 0: it listens on the first port too, so the rule holds for every worker count.
    assert settings(monkeypatch, workers="1").worker_addresses == ["0.0.0.0:6101"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workers": "4", "worker_ports_from": "65533"}, "past 65535"),
        ({"workers": "2", "worker_ports_from": "50050"}, "include the listen port 50051"),
        ({"workers": "2", "worker_ports_from": "9100"}, "include the metrics port 9101"),
        ({"worker_ports_from": "-1"}, "DEMO_WORKER_PORTS_FROM"),
        ({"worker_ports_from": "70000"}, "DEMO_WORKER_PORTS_FROM"),
        ({"worker_ports_from": "many"}, "DEMO_WORKER_PORTS_FROM must be an integer"),
    ],
)
def test_unusable_worker_ports_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match="DEMO_WORKER_PORTS_FROM") as refused:
        settings(monkeypatch, **values)
    assert message in str(refused.value)


def test_the_metrics_port_is_no_obstacle_when_metrics_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    read = settings(monkeypatch, workers="2", worker_ports_from="9100", metrics_listen="off")
    assert read.worker_addresses == ["127.0.0.1:9100", "127.0.0.1:9101"]


def test_a_port_something_listens_on_is_not_free() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.listen()
        assert not _port_is_free(f"127.0.0.1:{port}")
    assert _port_is_free(f"127.0.0.1:{port}")
