"""The application factory: settings in, a configured Flask app out."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, request, session
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

from auth_web import audit, context, db, errors, i18n, oidc, redis_store, templating
from auth_web import metrics as auth_metrics
from auth_web.challenges import ChallengeStore
from auth_web.config import Settings
from auth_web.extensions import csrf, init_limiter
from auth_web.face_services import FaceServices
from auth_web.proxies import TRUSTED_PROXY_ENVIRON_KEY, AddressMatcher, TrustedProxyFix
from auth_web.sessions import RedisSession, RedisSessionInterface
from faceauth_common.logs import request_id_var

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Endpoints that must answer without a session (Redis may be the thing that is down).
_SESSIONLESS_ENDPOINTS = {"static", "health.healthz", "health.readyz", "api.openapi", "language.choose"}

# 'wasm-unsafe-eval' lets the page compile WebAssembly (the live guidance's face detector runs on tfjs's WASM
# backend, static/vendor/tfjs-backend-wasm@4.22.0); it does not allow eval() or new Function() of JavaScript.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class StrictJSONProvider(DefaultJSONProvider):
    """Request JSON that Python would parse but that is no valid JSON text becomes a ValueError (→ 400).

    ``request.get_json`` turns a ValueError into "bad request" (or None when silent); anything else it lets
    through as a 500. So: nesting deeper than the parser's recursion limit, the non-standard constants
    NaN/Infinity, and lone UTF-16 surrogates (``"\\ud800"``: not text, and every UTF-8 encoder — Redis,
    Postgres — refuses them) are refused here, once for every endpoint.
    """

    def loads(self, s: str | bytes, **kwargs: object) -> object:
        kwargs.setdefault("parse_constant", _refuse_constant)
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise ValueError("JSON string with a lone surrogate, or nested too deeply") from None
        return value


class HostCheck:
    """A Host (or a trusted proxy's X-Forwarded-Host) that is no valid host name gets a plain 400 here.

    Flask binds its URL map to the host before anything else; when that fails (e.g. a label over 63 characters)
    the request has no URL adapter, and every error page (url_for) would fail in turn: a 500. Inside
    TrustedProxyFix, so the host checked is the one Flask will use.
    """

    def __init__(self, wsgi_app: Any, app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            self.app.url_map.bind_to_environ(environ, server_name=self.app.config.get("SERVER_NAME"))
        except HTTPException:
            body = json.dumps({"ok": False, "error": "bad_host", "message": "The request's host name is invalid."})
            response = Response(body, status=400, mimetype="application/json")
            response.headers.update(_security_headers())
            response.headers["X-Request-ID"] = uuid.uuid4().hex
            return response(environ, start_response)
        return self.wsgi_app(environ, start_response)


def _security_headers() -> dict[str, str]:
    return {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
        "Cache-Control": "no-store",
    }


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def create_app(settings: Settings | None = None, *, face_services: FaceServices | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        SESSION_COOKIE_NAME=settings.session_cookie_name,
        SESSION_COOKIE_SECURE=settings.force_secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # A parent domain (".example.com") lets forward-auth see the session on the apps' subdomains.
        SESSION_COOKIE_DOMAIN=settings.session_cookie_domain or None,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        # Flask-WTF's HTTPS Referer check would refuse every POST behind the gateway, which sends
        # Referrer-Policy: no-referrer; the Origin check below does that job instead.
        WTF_CSRF_SSL_STRICT=False,
        RATELIMIT_STORAGE_URI=settings.redis_url,
        RATELIMIT_STORAGE_OPTIONS={
            "key_prefix": settings.redis_prefix + "limits",
            "wrap_exceptions": True,
            "socket_timeout": settings.redis_timeout_seconds,
            "socket_connect_timeout": settings.redis_timeout_seconds,
        },
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_STRATEGY="moving-window",
        RATELIMIT_SWALLOW_ERRORS=False,
    )
    app.json = StrictJSONProvider(app)
    app.wsgi_app = HostCheck(app.wsgi_app, app)  # type: ignore[method-assign]
    if settings.proxy_count:
        # X-Forwarded-For/-Proto/-Host/-Port from exactly this many proxies (the gateway), and only when the
        # connection comes from a trusted proxy's address: a client reaching auth-web directly can't pick its address.
        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, AddressMatcher(settings.trusted_proxies), settings.proxy_count
        )
    redis_client = redis_store.make_client(settings)
    app.session_interface = RedisSessionInterface(
        redis_client, settings.redis_prefix, settings.session_idle_seconds, settings.session_absolute_seconds
    )
    context.bind(
        app,
        settings=settings,
        redis_client=redis_client,
        challenge_store=ChallengeStore(redis_client, settings.redis_prefix, settings.challenge_ttl_seconds),
        services=face_services or FaceServices(settings),
        internal=AddressMatcher(settings.internal_addresses),
    )
    db.init_app(app, settings)

    # Order matters: request id and the session check run before CSRF and rate limits.
    _register_request_hooks(app, settings)
    csrf.init_app(app)
    errors.register(app)
    templating.init_app(app)
    i18n.init_app(app, settings.languages)

    from auth_web.blueprints import account, admin, api, auth, enroll, health, language, login_steps
    from auth_web.blueprints import admin_oidc as admin_oidc_bp
    from auth_web.blueprints import forward_auth as forward_auth_bp
    from auth_web.blueprints import oidc as oidc_bp
    from auth_web.blueprints import passkeys as passkeys_bp

    for blueprint in (health.bp, auth.bp, enroll.bp, account.bp, admin.bp, api.bp, login_steps.bp, passkeys_bp.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(language.bp)  # the footer's language switcher (i18n.py)
    # The OpenID Connect provider and forward-auth (auth_web/oidc.py, docs/oidc.md).
    app.register_blueprint(oidc_bp.bp)
    app.register_blueprint(forward_auth_bp.bp)
    app.register_blueprint(admin_oidc_bp.bp)
    oidc.init_app(app)
    from auth_web.blueprints import recovery as recovery_bp

    app.register_blueprint(recovery_bp.bp)  # recovery links and self-service (auth_web/recovery.py)
    init_limiter(app, settings)

    @app.context_processor
    def _template_globals() -> dict[str, object]:
        return {"current_user": g.get("user"), "settings": settings}

    return app


def _register_request_hooks(app: Flask, settings: Settings) -> None:
    @app.before_request
    def _request_id() -> None:
        g.request_started = time.perf_counter()
        # The gateway's id when it sent one (only a trusted proxy's header counts), otherwise our own.
        incoming = request.headers.get("X-Request-ID", "") if request.environ.get(TRUSTED_PROXY_ENVIRON_KEY) else ""
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.request_id_token = request_id_var.set(g.request_id)

    @app.before_request
    def _same_origin() -> None:
        # Defence in depth beside the CSRF token: a POST announcing a foreign Origin is refused.
        # Only the host name is compared: behind a gateway the public port may differ from the forwarded one.
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        origin = request.headers.get("Origin", "")
        if origin and origin != "null" and urlsplit(origin).hostname != urlsplit(request.host_url).hostname:
            raise CSRFError("The request came from another site.")

    @app.before_request
    def _forms_take_form_data() -> None:
        # Flask-WTF reads a JSON body as the form's data, and crashes (500) on one that is not an object; the
        # pages' forms post form data, only /api/ takes JSON.
        if request.method == "POST" and request.is_json and not request.path.startswith("/api/"):
            raise UnsupportedMediaType("This form takes form data, not JSON.")

    @app.before_request
    def _session_and_user() -> None:
        g.user = None
        if request.endpoint in _SESSIONLESS_ENDPOINTS:
            return
        if isinstance(session, RedisSession):
            if session.unavailable:
                raise errors.DependencyDown("redis")
            if session.new:
                # Nothing was read from Redis for this request: make sure it answers before serving a page
                # whose forms and camera flow cannot work without it.
                context.redis().ping()
        user_id = session.get("user_id")
        if user_id is None:
            return
        from auth_web.models import User

        user = db.db().get(User, user_id)
        if user is None or not user.is_active:
            session.end()
            return
        g.user = user

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "-")
        for name, value in _security_headers().items():
            if name != "Cache-Control":  # below: pages and API answers only, not static files
                response.headers.setdefault(name, value)
        started = g.get("request_started")
        elapsed = time.perf_counter() - started if started else None
        endpoint = request.endpoint or "unmatched"  # the route, not the path: bounded label values
        recorded = auth_metrics.metrics()
        recorded.http_requests.labels(endpoint=endpoint, method=request.method, status=str(response.status_code)).inc()
        if elapsed is not None:
            recorded.http_latency.labels(endpoint=endpoint).observe(elapsed)
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "duration_ms": round(elapsed * 1000, 1) if elapsed is not None else None,
                    }
                },
            )
        return response

    @app.teardown_request
    def _reset_request_id(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)


__all__ = ["audit", "create_app"]
