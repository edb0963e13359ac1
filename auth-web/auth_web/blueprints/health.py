"""/healthz: the process answers. /readyz: every dependency answers (Postgres, Redis, both gRPC services).

The per-dependency details of /readyz go only to internal callers (loopback, AUTH_INTERNAL_ADDRESSES).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from auth_web import context
from auth_web.extensions import csrf
from auth_web.face_services import LIVENESS, RECOGNITION

bp = Blueprint("health", __name__)
csrf.exempt(bp)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


def _database_ok() -> bool:
    try:
        with context.engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


def _redis_ok() -> bool:
    try:
        return bool(context.redis().ping())
    except Exception:  # any failure to answer means not ready
        return False


@bp.get("/readyz")
def readyz() -> Response:
    services = context.face_services()
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def in_app(check):  # type: ignore[no-untyped-def]
        def run() -> bool:
            with app.app_context():
                return check()

        return run

    checks = {
        "database": in_app(_database_ok),
        "redis": in_app(_redis_ok),
        LIVENESS: lambda: services.serving(LIVENESS),
        RECOGNITION: lambda: services.serving(RECOGNITION),
    }
    # In parallel, so a slow dependency costs its own timeout once, not the sum.
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        results = {name: "ok" if future.result() else "unavailable" for name, future in futures.items()}
    ready = all(state == "ok" for state in results.values())
    if request.remote_addr in context.internal_addresses():
        # Loopback (the container health checks) and AUTH_INTERNAL_ADDRESSES: which dependency is missing.
        response = jsonify({"ok": ready, "status": "ready" if ready else "unavailable", "checks": results})
    else:
        # Anyone else (e.g. through the gateway) learns only whether auth-web can serve.
        response = jsonify({"ok": ready})
    response.status_code = 200 if ready else 503
    return response
