"""The Redis client shared by sessions, challenges (and, through its own pool, Flask-Limiter)."""

from __future__ import annotations

import redis
from flask import current_app

from auth_web.config import Settings

_EXTENSION = "faceauth_redis"


def make_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )


def client() -> redis.Redis:
    return current_app.extensions[_EXTENSION]


def key(name: str) -> str:
    """A key under this deployment's prefix (AUTH_REDIS_PREFIX)."""
    return current_app.config["FACEAUTH_SETTINGS"].redis_prefix + name
