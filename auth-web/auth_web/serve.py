"""Run the app under gunicorn (threaded workers; each worker builds its own app, channels and pools).

Metrics: the workers record into prometheus-client's multiprocess files; the master serves the merged
``/metrics`` on ``AUTH_WEB_METRICS_LISTEN`` (a port of its own, not routed by the gateway), drops a dead
worker's files (``child_exit``) and removes its temporary folder on exit.
Logs: gunicorn's own lines go through the same JSON formatter; its access log stays off because auth-web
writes one ``request`` line per request (with the request id).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from auth_web.config import Settings
from auth_web.proxies import AddressMatcher
from faceauth_common import metrics as service_metrics
from faceauth_common.logs import configure_logging

log = logging.getLogger(__name__)


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": self.settings.listen,
            "workers": self.settings.workers,
            "threads": self.settings.threads,
            "worker_class": "gthread",
            # Liveness and recognition may take several seconds under load; above their deadlines.
            "timeout": int(max(self.settings.liveness_deadline_seconds, self.settings.recognition_deadline_seconds))
            + 30,
            "graceful_timeout": 20,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            "limit_request_line": 8190,
            # gunicorn itself honours X-Forwarded-Proto (wsgi.url_scheme) only from these peers: the trusted
            # proxies' literal addresses, never "*". The app's TrustedProxyFix does the rest (and host names).
            "forwarded_allow_ips": forwarded_allow_ips(self.settings),
            "post_worker_init": _worker_logging(self.settings),
            "logger_class": JsonGunicornLogger,
            "when_ready": _serve_metrics(self.settings),
            "child_exit": _worker_exited,
            "on_exit": _cleanup_metrics,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        from auth_web.app import create_app

        return create_app(self.settings)


def forwarded_allow_ips(settings: Settings) -> str:
    """gunicorn's forwarded_allow_ips: the trusted proxies' IPs/networks; none without a proxy in front."""
    if not settings.proxy_count:
        return ""
    return ",".join(AddressMatcher(settings.trusted_proxies).literal())


def _worker_logging(settings: Settings):  # type: ignore[no-untyped-def]
    def hook(_worker) -> None:  # type: ignore[no-untyped-def]
        configure_logging("auth-web", settings.log_level)

    return hook


class JsonGunicornLogger(glogging.Logger):
    """gunicorn's error log through the root logger, i.e. the JSON lines of ``configure_logging``."""

    def setup(self, cfg) -> None:  # type: ignore[no-untyped-def]
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


def _serve_metrics(settings: Settings):  # type: ignore[no-untyped-def]
    def hook(arbiter) -> None:  # type: ignore[no-untyped-def]
        try:
            service_metrics.start_metrics_server(settings.metrics_listen, lambda: list(arbiter.WORKERS.copy()))
        except OSError as error:
            # A busy metrics port must not take the web app down with it.
            log.error(
                "metrics_listen_failed", extra={"fields": {"listen": settings.metrics_listen, "error": str(error)}}
            )

    return hook


def _worker_exited(_arbiter, worker) -> None:  # type: ignore[no-untyped-def]
    service_metrics.mark_process_dead(worker.pid)


def _cleanup_metrics(_arbiter) -> None:  # type: ignore[no-untyped-def]
    service_metrics.cleanup_multiprocess_dir()


def run(settings: Settings) -> None:
    # Before anything imports prometheus_client: the workers record, the master serves, so gunicorn always
    # needs the multiprocess mode (PROMETHEUS_MULTIPROC_DIR when set, else a temporary folder).
    service_metrics.prepare_multiprocess(max(2, settings.workers + 1))
    configure_logging("auth-web", settings.log_level)
    log.info(
        "starting",
        extra={
            "fields": {
                "listen": settings.listen,
                "workers": settings.workers,
                "env": settings.env,
                "metrics_listen": settings.metrics_listen or "off",
                "metrics_dir": os.environ.get(service_metrics.MULTIPROC_ENV),
            }
        },
    )
    _Gunicorn(settings).run()
