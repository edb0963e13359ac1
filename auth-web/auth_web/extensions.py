"""Flask extensions bound to each app: CSRF protection and rate limits."""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, request
from flask_limiter import HeaderNames, Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from auth_web import context, reasons
from auth_web import metrics as auth_metrics
from auth_web.accounts import normalize_username
from auth_web.config import Settings

log = logging.getLogger(__name__)

csrf = CSRFProtect()


def username_key() -> str:
    """Rate-limit key for the username a login challenge claims (case-insensitive) *from this client address*.

    Keyed by both, so that one address asking for a username's challenges cannot use up the budget of its
    owner at another address; the username-wide protection is the failure throttle (accounts.ThrottlePolicy).
    """
    payload = request.get_json(silent=True)
    raw = payload.get("username") if isinstance(payload, dict) else request.form.get("username")
    return "username:" + normalize_username(str(raw or ""))[:64] + "@" + get_remote_address()


def user_key() -> str:
    from flask import g

    user = g.get("user")
    return f"user:{user.id}" if user is not None else "address:" + get_remote_address()


def _on_breach(limit: RequestLimit) -> None:
    from auth_web import audit

    log.warning("rate_limited", extra={"fields": {"path": request.path, "limit": str(limit.limit)}})
    auth_metrics.metrics().rate_limited.labels(endpoint=request.endpoint or "unmatched").inc()
    claimed = None
    if request.path.startswith("/api/login"):
        payload = request.get_json(silent=True)
        claimed = payload.get("username") if isinstance(payload, dict) else None
    audit.record(
        reasons.RATE_LIMIT,
        reasons.FAILURE,
        reasons.RATE_LIMITED,
        claimed_username=str(claimed) if claimed else None,
        details={"path": request.path, "limit": str(limit.limit)},
    )


LIMITER_RETRY_AFTER_HEADER = "X-RateLimit-Retry-After"


def breached_retry_after() -> int:
    """Seconds until the limit this request broke lets a request through again (the 429's Retry-After)."""
    limiter = context.limiter()
    limit = limiter.current_limit if limiter is not None else None
    if limit is None:
        return 1
    return max(1, math.ceil(limit.reset_at - time.time()))


def init_limiter(app: Flask, settings: Settings) -> Limiter:
    """One Limiter per app (its own Redis storage and key prefix), limits from the settings.

    Keyed by client address by default: the real one, since ProxyFix applies the gateway's X-Forwarded-For.
    """
    # The limiter would put the reset of its own window into Retry-After on every response, overriding (as the
    # larger value) the login throttle's short Retry-After; so its value goes into a header of its own, and
    # Retry-After is set by whoever answers 429 (errors.py for the limiter, login.py for the throttle).
    limiter = Limiter(
        key_func=get_remote_address,
        on_breach=_on_breach,
        header_name_mapping={HeaderNames.RETRY_AFTER: LIMITER_RETRY_AFTER_HEADER},
    )
    limiter.init_app(app)
    per_endpoint = {
        "api.login_challenge": [
            (settings.rate_limit_login_per_address, None),
            (settings.rate_limit_login_per_username, username_key),
        ],
        "api.login_attempt": [(settings.rate_limit_login_per_address, None)],
        "auth.register": [(settings.rate_limit_register_per_address, None)],
        "oidc.token": [(settings.rate_limit_token_per_address, None)],
        # Self-service mail and following recovery links (tokens are 256-bit, but mail costs and floods).
        "recovery.forgot": [(settings.rate_limit_recovery_per_address, None)],
        "recovery.use": [(settings.rate_limit_recovery_per_address, None)],
        "api.enroll_challenge": [(settings.rate_limit_enroll_per_user, user_key)],
        "api.enroll": [(settings.rate_limit_enroll_per_user, user_key)],
        "api.flash_calibration_challenge": [(settings.rate_limit_enroll_per_user, user_key)],
        "api.flash_calibration_check": [(settings.rate_limit_enroll_per_user, user_key)],
    }
    for endpoint, limits in per_endpoint.items():
        view = app.view_functions[endpoint]
        for index, (value, key_func) in enumerate(limits):
            # Each limit gets its own scope so that address and username counters are separate.
            view = limiter.limit(value, key_func=key_func, scope=f"{endpoint}:{index}", methods=["POST"])(view)
        app.view_functions[endpoint] = view
    context.bind_limiter(app, limiter)
    return limiter
