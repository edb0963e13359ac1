"""Run the app under gunicorn (threaded workers; each worker builds its own app, channels and pools)."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from auth_web.config import Settings
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
            "forwarded_allow_ips": "*" if self.settings.proxy_count else "127.0.0.1",
            "post_worker_init": _worker_logging(self.settings),
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        from auth_web.app import create_app

        return create_app(self.settings)


def _worker_logging(settings: Settings):  # type: ignore[no-untyped-def]
    def hook(_worker) -> None:  # type: ignore[no-untyped-def]
        configure_logging("auth-web", settings.log_level)

    return hook


def run(settings: Settings) -> None:
    configure_logging("auth-web", settings.log_level)
    log.info(
        "starting", extra={"fields": {"listen": settings.listen, "workers": settings.workers, "env": settings.env}}
    )
    _Gunicorn(settings).run()
