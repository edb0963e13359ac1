"""The monitoring pieces agree with each other: Prometheus scrapes the ports docker-compose gives the services,
the optional Prometheus stays optional and unpublished, and every series the Grafana dashboard queries is
documented (README.md, "Metrics") and defined in the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
PROMETHEUS = yaml.safe_load((REPO_ROOT / "monitoring/prometheus.yml").read_text())
DASHBOARD = json.loads((REPO_ROOT / "monitoring/grafana/faceauth-dashboard.json").read_text())
METRICS_LISTEN = {
    "auth-web": "AUTH_WEB_METRICS_LISTEN",
    "liveness-service": "LIVENESS_METRICS_LISTEN",
    "recognition-service": "RECOGNITION_METRICS_LISTEN",
}
SOURCES = [
    REPO_ROOT / "common/faceauth_common/metrics.py",
    REPO_ROOT / "auth-web/auth_web/metrics.py",
    REPO_ROOT / "liveness-service/liveness_service/servicer.py",  # faceauth_liveness_flash_score
]


def _documented_series() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = re.search(r"^## Metrics\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README.md has no Metrics section"
    return set(re.findall(r"^\| `(faceauth_[a-z_]+)`", section.group(1), re.M))


def test_prometheus_scrapes_every_service_on_its_compose_metrics_port() -> None:
    jobs = {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}
    for service, variable in METRICS_LISTEN.items():
        environment = dict(entry.split("=", 1) for entry in COMPOSE["services"][service]["environment"] if "=" in entry)
        host, port = environment[variable].rsplit(":", 1)
        assert host == "0.0.0.0", f"{service} must listen for Prometheus inside the backend network"  # noqa: S104
        discovery = jobs[service]["dns_sd_configs"][0]
        assert discovery["names"] == [service] and discovery["type"] == "A"
        assert discovery["port"] == int(port)


def test_prometheus_is_optional_and_publishes_nothing() -> None:
    prometheus = COMPOSE["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert "ports" not in prometheus
    assert prometheus["networks"] == ["backend"]
    source = prometheus["volumes"][0].split(":")[0]
    assert (REPO_ROOT / source).resolve() == (REPO_ROOT / "monitoring/prometheus.yml").resolve()
    for service in ("auth-web", "liveness-service", "recognition-service", "gateway"):
        assert "profiles" not in COMPOSE["services"][service], f"{service} must start without a profile"


def test_dashboard_queries_only_documented_series_that_exist() -> None:
    expressions = [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", name) for e in expressions for name in re.findall(r"faceauth_\w+", e)}
    documented = _documented_series()
    assert used <= documented, f"undocumented series in the dashboard: {sorted(used - documented)}"
    code = "\n".join(path.read_text() for path in SOURCES)
    defined = set(re.findall(r'"(faceauth_[a-z_]+)"', code))
    assert documented == defined, f"documented vs defined differ: {sorted(documented ^ defined)}"
    titles = " ".join(panel["title"].lower() for panel in DASHBOARD["panels"])
    for needed in ("login", "p95", "stage", "reason"):
        assert needed in titles


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_the_port_override_is_valid_and_binds_to_localhost_only() -> None:
    env = {
        **os.environ,
        "FACEAUTH_SECRET_KEY": "x" * 40,
        "FACEAUTH_TEMPLATE_KEY": "k" * 43,
        "POSTGRES_PASSWORD": "pg",
        "REDIS_PASSWORD": "redis",
        "GATEWAY_TLS_DIR": "/etc/faceauth-tls",
    }
    files = ["-f", "docker-compose.yml", "-f", "monitoring/compose.prometheus-port.yml"]
    result = subprocess.run(
        ["docker-compose", *files, "--profile", "monitoring", "config"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    prometheus = yaml.safe_load(result.stdout)["services"]["prometheus"]
    # docker-compose 1.29 prints a host-bound port in the short syntax, v2 as a mapping.
    ports = [p if isinstance(p, str) else f"{p['host_ip']}:{p['published']}:{p['target']}" for p in prometheus["ports"]]
    assert [p.removesuffix("/tcp") for p in ports] == ["127.0.0.1:9090:9090"]
