"""Every failure becomes a clear page or JSON answer: dependencies down → 503, never a trace."""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from limits.errors import StorageError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from auth_web.face_services import CaptureRejected, ServiceUnavailable

log = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = _l("The service is temporarily unavailable. Please try again in a minute.")
# The answer to every 429 of auth-web (the limiter's and the login throttle's); capture.js shows it.
RATE_LIMITED_MESSAGE = _l("Too many attempts. Please wait a little and try again.")
#: The page title and message of each HTTP error a person may meet (others: Werkzeug's English name).
HTTP_TITLES = {
    400: _l("Bad Request"),
    401: _l("Unauthorized"),
    403: _l("Forbidden"),
    404: _l("Not Found"),
    405: _l("Method Not Allowed"),
    410: _l("Gone"),
    413: _l("Request Entity Too Large"),
    415: _l("Unsupported Media Type"),
    429: _l("Too Many Requests"),
}
HTTP_MESSAGES = {
    400: _l("The request was not understood."),
    403: _l("You do not have access to this page."),
    404: _l("There is nothing here."),
    405: _l("That method is not allowed here."),
    413: _l("The upload is too large."),
}


class DependencyDown(Exception):
    """Raised by the app itself when a dependency is known to be unreachable (e.g. Redis at session load)."""

    def __init__(self, dependency: str) -> None:
        super().__init__(dependency)
        self.dependency = dependency


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, title: str | None = None) -> Response:
    """The JSON answer (``error``: a code for programs, ``message``: words for people, in the request's language) or
    the error page."""
    if wants_json():
        response = jsonify({"ok": False, "error": code, "message": str(message)})
    else:
        response = Response(
            render_template(
                "error.html", status=status, title=str(title or _("Something went wrong")), message=str(message)
            ),
            mimetype="text/html",
        )
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = "30"
    return response


def unavailable(dependency: str, detail: str = "") -> Response:
    log.error("dependency_unavailable", extra={"fields": {"dependency": dependency, "detail": detail}})
    return error_response(503, "temporarily_unavailable", UNAVAILABLE_MESSAGE, _("Temporarily unavailable"))


def register(app: Flask) -> None:
    @app.errorhandler(ServiceUnavailable)
    def _grpc_down(error: ServiceUnavailable) -> Response:
        return unavailable(error.service, error.code)

    @app.errorhandler(DependencyDown)
    def _dependency_down(error: DependencyDown) -> Response:
        return unavailable(error.dependency)

    @app.errorhandler(redis.RedisError)
    @app.errorhandler(StorageError)
    def _redis_down(error: Exception) -> Response:
        return unavailable("redis", type(error).__name__)

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database_down(error: Exception) -> Response:
        return unavailable("database", type(error).__name__)

    @app.errorhandler(CaptureRejected)
    def _capture_rejected(error: CaptureRejected) -> Response:
        return error_response(400, "bad_capture", _("The camera capture could not be used. Please try again."))

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError) -> Response:
        log.warning("csrf_rejected", extra={"fields": {"path": request.path, "why": error.description}})
        return error_response(
            400, "csrf_failed", _("Your form expired or came from another site. Reload the page and try again.")
        )

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(error: RateLimitExceeded) -> Response:
        from auth_web.extensions import breached_retry_after

        response = error_response(429, "rate_limited", RATE_LIMITED_MESSAGE, _("Slow down"))
        response.headers["Retry-After"] = str(breached_retry_after())
        return response

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        return error_response(
            status,
            (error.name or "error").lower().replace(" ", "_"),
            HTTP_MESSAGES.get(status, error.description or ""),
            HTTP_TITLES.get(status, error.name),
        )

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Wrapped causes first: a dependency failure deep inside still becomes a 503.
        cause = error
        while cause is not None:
            if isinstance(cause, redis.RedisError | StorageError):
                return unavailable("redis", type(cause).__name__)
            if isinstance(cause, OperationalError | DBAPIError):
                return unavailable("database", type(cause).__name__)
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        log.exception("unhandled_error")
        return error_response(500, "internal_error", _("Something went wrong on our side. Please try again."))
