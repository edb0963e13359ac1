"""Forward-auth for reverse proxies (nginx ``auth_request``, Traefik ``ForwardAuth``, Caddy ``forward_auth``).

``GET /auth/verify`` answers 200 with ``Remote-User``, ``Remote-Name``, ``Remote-Email`` and ``Remote-Groups`` for a
signed-in session (the proxy copies them to the protected app), otherwise 401 — or, when the proxy says where the
visitor was going (``?rd=<url>``, or Traefik/Caddy's ``X-Forwarded-Proto/-Host/-Uri``), a 302 to faceauth's
sign-in that comes back there. A return URL must point to this host or to one of ``AUTH_FORWARD_AUTH_DOMAINS``;
anything else is refused (401, nothing redirected): faceauth is no open redirector.
"""

from __future__ import annotations

import json
import logging
import secrets
from urllib.parse import unquote, urlencode, urlsplit

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from auth_web import context
from auth_web.db import db
from auth_web.groups import group_names

log = logging.getLogger(__name__)

bp = Blueprint("forward_auth", __name__, url_prefix="/auth")

_MAX_URL_LENGTH = 2048


def allowed_return_url(raw: str | None) -> str | None:
    """``raw`` when it is an absolute http(s) URL to this host or an allowed domain; None otherwise."""
    if not raw or len(raw) > _MAX_URL_LENGTH or not raw.isascii() or not raw.isprintable() or "\\" in raw:
        return None
    try:
        target = urlsplit(raw)
        hostname = (target.hostname or "").lower()
        target.port  # noqa: B018 (a malformed port raises ValueError)
    except ValueError:
        return None
    if target.scheme not in ("http", "https") or not hostname or "@" in target.netloc:
        return None
    own = (urlsplit(request.host_url).hostname or "").lower()
    if hostname == own:
        return raw
    for domain in context.settings().forward_auth_domains:
        if hostname == domain.lstrip(".") or (domain.startswith(".") and hostname.endswith(domain)):
            return raw
    return None


def _requested_return_url() -> str | None:
    """Where the visitor was going, as the proxy tells it (``rd``, or the X-Forwarded-* trio); None when not told."""
    if "rd" in request.args:
        return request.args["rd"]
    uri = request.headers.get("X-Forwarded-Uri")
    if uri is None:
        return None
    proto = request.headers.get("X-Forwarded-Proto", "https").split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    return f"{proto}://{host}{uri}" if host else None


def _login_start(return_url: str) -> str:
    base = context.settings().forward_auth_login_url or (request.host_url.rstrip("/") + url_for("forward_auth.start"))
    return base + ("&" if "?" in base else "?") + urlencode({"rd": return_url})


@bp.get("/verify")
def verify() -> Response:
    user = g.get("user")
    if user is not None:
        response = Response(status=200)
        response.headers["Remote-User"] = user.username
        response.headers["Remote-Name"] = getattr(user, "display_name", None) or user.username
        email = getattr(user, "email", None)
        if email:
            response.headers["Remote-Email"] = email
        response.headers["Remote-Groups"] = ",".join(group_names(db(), user))
        return response
    requested = _requested_return_url()
    if requested is not None:
        allowed = allowed_return_url(requested)
        if allowed is not None:
            return redirect(_login_start(allowed))  # type: ignore[return-value]
        log.warning("forward_auth_return_refused", extra={"fields": {"host": urlsplit(requested).netloc[:100]}})
    response = Response("Sign-in required.\n", status=401, mimetype="text/plain")
    response.headers["WWW-Authenticate"] = 'FaceAuth realm="faceauth"'
    return response


@bp.get("/start")
def start() -> Response:
    """Sign in (when needed), then back to ``rd``: nginx's ``error_page 401`` and the 302 above send visitors here."""
    return_url = allowed_return_url(_rd_from_query())
    if return_url is None:
        return render_template(  # type: ignore[return-value]
            "error.html",
            status=400,
            title=_("Unknown destination"),
            message=_("The page that sent you here is not one faceauth signs in for."),
        ), 400
    if g.get("user") is not None:
        return redirect(return_url)  # type: ignore[return-value]
    # Kept server-side: the login page's next= takes local paths only (and short ones).
    return_id = secrets.token_urlsafe(18)
    ttl = context.settings().oidc_request_seconds
    context.redis().set(_return_key(return_id), json.dumps({"rd": return_url}), ex=ttl)
    return redirect(url_for("auth.login", next=url_for("forward_auth.back", return_id=return_id)))  # type: ignore[return-value]


@bp.get("/back/<return_id>")
def back(return_id: str) -> Response:
    if len(return_id) > 64:
        abort(404)
    if g.get("user") is None:
        return redirect(url_for("auth.login", next=request.path))  # type: ignore[return-value]
    raw = context.redis().getdel(_return_key(return_id))
    if raw is None:
        return redirect(url_for("account.dashboard"))  # type: ignore[return-value]
    return_url = allowed_return_url(json.loads(raw)["rd"])
    return redirect(return_url or url_for("account.dashboard"))  # type: ignore[return-value]


def _rd_from_query() -> str | None:
    """``rd``, taken whole from the raw query string when it comes first: nginx cannot percent-encode the URL it
    puts there (``?rd=$scheme://$http_host$request_uri``), so the page's own ``&`` parameters belong to it."""
    raw = request.query_string.decode("latin-1")
    if not raw.startswith("rd="):
        return request.args.get("rd")
    value = raw[3:]
    if value.lower().startswith(("http%3a", "https%3a")):  # percent-encoded (/auth/verify's own redirect)
        value = unquote(value)
    return value


def _return_key(return_id: str) -> str:
    return f"{context.settings().redis_prefix}forward_auth:{return_id}"
