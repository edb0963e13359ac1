"""The Redis client shared by sessions, challenges (and, through its own pool, Flask-Limiter)."""

from __future__ import annotations

import redis

from auth_web.config import Settings


def make_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )
