"""auth-web's Prometheus metrics (README.md, "Metrics").

gunicorn runs the app in worker processes and serves ``/metrics`` from the master on its own port
(``AUTH_WEB_METRICS_LISTEN``, never through the gateway), so prometheus-client always runs in
multiprocess mode here: ``python -m auth_web serve`` calls ``prepare_multiprocess`` before anything
imports it. The metric objects are created on first use, after that.
"""

from __future__ import annotations

from typing import Any

from auth_web import reasons
from faceauth_common.metrics import created_once

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)
#: The flash score is 0..1 against liveness' threshold: tenths, finer near the top.
FLASH_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.http_requests = Counter(
            "faceauth_http_requests_total",
            "HTTP requests answered, by Flask endpoint, method and status code",
            ["endpoint", "method", "status"],
        )
        self.http_latency = Histogram(
            "faceauth_http_request_seconds",
            "HTTP request latency by Flask endpoint",
            ["endpoint"],
            buckets=HTTP_BUCKETS,
        )
        self.login_decisions = Counter(
            "faceauth_login_decisions_total", "Login attempts decided, by result and audit reason", ["result", "reason"]
        )
        self.enrollments = Counter(
            "faceauth_enrollments_total",
            "Enrollment attempts decided, by result and audit reason",
            ["result", "reason"],
        )
        self.flash_scores = Histogram(
            "faceauth_flash_score",
            "Screen-flash reflection scores liveness reported, by purpose (login, enroll, flash_calibration)",
            ["purpose"],
            buckets=FLASH_SCORE_BUCKETS,
        )
        self.lockouts = Counter(
            "faceauth_lockouts_total",
            "Client addresses locked (for one username or for all) after too many failed logins",
        )
        self.rate_limited = Counter(
            "faceauth_rate_limited_total", "Requests refused by auth-web's rate limits (429), by endpoint", ["endpoint"]
        )
        self.grpc_client_latency = Histogram(
            "faceauth_grpc_client_request_seconds",
            "gRPC calls to the model services, latency by dependency and method",
            ["dependency", "method"],
            buckets=HTTP_BUCKETS,
        )
        self.grpc_client_errors = Counter(
            "faceauth_grpc_client_errors_total",
            "gRPC calls to the model services that failed, by dependency and status code",
            ["dependency", "code"],
        )
        self.grpc_client_deadline_exceeded = Counter(
            "faceauth_grpc_client_deadline_exceeded_total",
            "gRPC calls to the model services that ran past their deadline, by dependency",
            ["dependency"],
        )


metrics = created_once(_Metrics)


def audit_event(event: str, result: str, reason: str) -> None:
    """Count a decided login or enrollment (called for every audit record)."""
    if event == reasons.LOGIN:
        metrics().login_decisions.labels(result=result, reason=reason).inc()
    elif event == reasons.ENROLL:
        metrics().enrollments.labels(result=result, reason=reason).inc()


def flash_checked(purpose: str, score: float) -> None:
    """Record the flash score of one liveness answer."""
    metrics().flash_scores.labels(purpose=purpose).observe(score)


def grpc_call_done(dependency: str, method: str, seconds: float, code: Any) -> None:
    """Record one finished gRPC client call; ``code`` is a ``grpc.StatusCode``."""
    recorded = metrics()
    recorded.grpc_client_latency.labels(dependency=dependency, method=method).observe(seconds)
    name = getattr(code, "name", str(code))
    if name != "OK":
        recorded.grpc_client_errors.labels(dependency=dependency, code=name).inc()
    if name == "DEADLINE_EXCEEDED":
        recorded.grpc_client_deadline_exceeded.labels(dependency=dependency).inc()
