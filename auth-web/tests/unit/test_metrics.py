"""auth-web's metrics address setting, gRPC client accounting and gunicorn's JSON error log."""

from __future__ import annotations

import io
import json
import logging

import grpc
import pytest
from prometheus_client import REGISTRY

from auth_web import metrics as auth_metrics
from auth_web.config import Settings
from auth_web.serve import JsonGunicornLogger
from faceauth_common.logs import JsonFormatter
from faceauth_common.settings import SettingsError


def test_metrics_listen_default_off_and_validation() -> None:
    assert Settings.from_env({}).metrics_listen == "127.0.0.1:9100"
    assert Settings.from_env({"AUTH_WEB_METRICS_LISTEN": "off"}).metrics_listen == ""
    assert Settings.from_env({"AUTH_WEB_METRICS_LISTEN": "0.0.0.0:9200"}).metrics_listen == "0.0.0.0:9200"
    for bad in ("9100", "host:port", "127.0.0.1:70000"):
        with pytest.raises(SettingsError, match="AUTH_WEB_METRICS_LISTEN"):
            Settings.from_env({"AUTH_WEB_METRICS_LISTEN": bad})


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_grpc_client_calls_count_errors_and_deadlines_per_dependency() -> None:
    before = (
        _value("faceauth_grpc_client_request_seconds_count", dependency="liveness", method="Check"),
        _value("faceauth_grpc_client_errors_total", dependency="liveness", code="DEADLINE_EXCEEDED"),
        _value("faceauth_grpc_client_deadline_exceeded_total", dependency="liveness"),
        _value("faceauth_grpc_client_errors_total", dependency="recognition", code="UNAVAILABLE"),
    )
    auth_metrics.grpc_call_done("liveness", "Check", 0.2, grpc.StatusCode.OK)
    auth_metrics.grpc_call_done("liveness", "Check", 15.0, grpc.StatusCode.DEADLINE_EXCEEDED)
    auth_metrics.grpc_call_done("recognition", "Verify", 0.01, grpc.StatusCode.UNAVAILABLE)
    after = (
        _value("faceauth_grpc_client_request_seconds_count", dependency="liveness", method="Check"),
        _value("faceauth_grpc_client_errors_total", dependency="liveness", code="DEADLINE_EXCEEDED"),
        _value("faceauth_grpc_client_deadline_exceeded_total", dependency="liveness"),
        _value("faceauth_grpc_client_errors_total", dependency="recognition", code="UNAVAILABLE"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1, 1]


def test_audit_events_count_login_and_enrollment_decisions() -> None:
    login = _value("faceauth_login_decisions_total", result="failure", reason="VERIFY_NO_MATCH")
    enroll = _value("faceauth_enrollments_total", result="success", reason="OK")
    auth_metrics.audit_event("login", "failure", "VERIFY_NO_MATCH")
    auth_metrics.audit_event("enroll", "success", "OK")
    auth_metrics.audit_event("rate_limit", "failure", "RATE_LIMITED")  # counted by faceauth_rate_limited_total
    assert _value("faceauth_login_decisions_total", result="failure", reason="VERIFY_NO_MATCH") == login + 1
    assert _value("faceauth_enrollments_total", result="success", reason="OK") == enroll + 1
    assert _value("faceauth_login_decisions_total", result="failure", reason="RATE_LIMITED") == 0


def test_gunicorn_error_log_goes_through_the_json_formatter() -> None:
    from gunicorn.config import Config

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("auth-web"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        config = Config()
        config.set("errorlog", "-")
        gunicorn_log = JsonGunicornLogger(config)
        gunicorn_log.info("Booting worker with pid: %s", 1234)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and lines[-1]["event"] == "Booting worker with pid: 1234"
    assert lines[-1]["service"] == "auth-web" and lines[-1]["logger"] == "gunicorn.error"
