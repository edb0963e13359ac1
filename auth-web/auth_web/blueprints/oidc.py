"""OpenID Connect endpoints: discovery, JWKS, authorize (with sign-in, step-up and consent), token, userinfo,
end-session. The protocol objects are in oidc.py; this blueprint maps them to pages and redirects.

An authorization request is kept server-side (Redis, ``AUTH_OIDC_REQUEST_SECONDS``) under a random id while the
user signs in (``/login?next=/oauth2/continue/<id>``), re-authenticates (``/reauth?next=...`` for ``prompt=login``
or an exceeded ``max_age``) or answers the consent screen; every step re-validates it from scratch.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from auth_web import audit, context, oidc, oidc_keys, reasons
from auth_web.auth_helpers import login_required, session_auth_time, sign_out
from auth_web.db import db
from auth_web.extensions import csrf
from auth_web.forms import ActionForm
from auth_web.models import utcnow
from auth_web.oidc_models import OAuthConsent, RefreshToken

bp = Blueprint("oidc", __name__)

SCOPE_DESCRIPTIONS = {
    "openid": _l("Confirm who you are (a stable identifier, not your username)"),
    "profile": _l("Your username"),
    "email": _l("Your e-mail address"),
    "groups": _l("The groups you belong to"),
}
#: Cacheable answers (everything else is no-store): the configuration rarely changes; JWKS changes at rotation,
#: and a relying party that meets an unknown kid fetches it again.
DISCOVERY_MAX_AGE = 3600
JWKS_MAX_AGE = 300


def _request_key(request_id: str) -> str:
    return f"{context.settings().redis_prefix}oidc:request:{request_id}"


# -- discovery and keys ----------------------------------------------------------------------------------------


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    issuer = oidc.issuer()
    document = {
        "issuer": issuer,
        "authorization_endpoint": issuer + url_for("oidc.authorize"),
        "token_endpoint": issuer + url_for("oidc.token"),
        "userinfo_endpoint": issuer + url_for("oidc.userinfo"),
        "jwks_uri": issuer + url_for("oidc.jwks"),
        "end_session_endpoint": issuer + url_for("oidc.end_session"),
        "scopes_supported": list(oidc.SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [context.settings().oidc_signing_alg],
        "token_endpoint_auth_methods_supported": list(oidc.AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": list(oidc.ACR_VALUES),
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "preferred_username",
            "name",
            "email",
            "email_verified",
            "groups",
        ],
    }
    response = jsonify(document)
    response.headers["Cache-Control"] = f"public, max-age={DISCOVERY_MAX_AGE}"
    return response


@bp.get("/oauth2/jwks")
def jwks() -> Response:
    settings = context.settings()
    oidc_keys.ensure_active_key(db(), settings.template_cipher, settings.oidc_signing_alg)
    response = jsonify(oidc_keys.jwks(db(), settings.oidc_retired_key_seconds))
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response


# -- authorization ------------------------------------------------------------------------------------------------


@bp.get("/oauth2/authorize")
def authorize() -> Any:
    pairs = [(key, value) for key, values in request.args.lists() for value in values]
    if len(pairs) > 40 or sum(len(k) + len(v) for k, v in pairs) > 8192:
        abort(400)
    client = oidc.query_client(request.args.get("client_id", ""))
    if client is None or not client.check_redirect_uri(request.args.get("redirect_uri", "")):
        # Nothing is stored for a request that names no registered client and redirect URI (anyone can send one).
        return _invalid_request_page("an unknown client, or a redirect URI it did not register")
    request_id = secrets.token_urlsafe(24)
    pending = {"pairs": pairs, "created": time.time(), "session": context.browser_session().hash}
    context.redis().set(_request_key(request_id), json.dumps(pending), ex=context.settings().oidc_request_seconds)
    return _decide(request_id, pending)


@bp.route("/oauth2/continue/<request_id>", methods=["GET", "POST"])
def resume(request_id: str) -> Any:
    if len(request_id) > 64:
        abort(404)
    raw = context.redis().get(_request_key(request_id))
    if raw is None:
        return render_template(
            "error.html",
            status=400,
            title=_("This sign-in request has expired"),
            message=_("Go back to the application and sign in again."),
        ), 400
    decision = None
    if request.method == "POST":
        if not ActionForm().validate_on_submit():
            abort(400)
        decision = request.form.get("decision")
        if decision not in ("allow", "deny"):
            abort(400)
    return _decide(request_id, json.loads(raw), decision)


def _decide(request_id: str, pending: dict[str, Any], decision: str | None = None) -> Any:
    """Validate the stored request again and take its next step: sign in, step up, consent, or the code."""
    server = oidc.server()
    oauth_request = oidc.StoredAuthorizationRequest(pending["pairs"])
    user = g.get("user")
    try:
        grant = server.get_consent_grant(oauth_request, end_user=user)
    except OAuth2Error as error:
        return _authorization_error(request_id, oauth_request, error)
    data = oauth_request.payload.data
    prompts = (data.get("prompt") or "").split()
    here = url_for("oidc.resume", request_id=request_id)
    try:
        if user is None:
            if "none" in prompts:
                raise LoginRequiredError(redirect_uri=grant.redirect_uri)
            return redirect(url_for("auth.login", next=here))
        if not _fresh_enough(pending, prompts, data.get("max_age")):
            if "none" in prompts:
                raise LoginRequiredError(redirect_uri=grant.redirect_uri)
            return _step_up(here)
        client: oidc.RegisteredClient = grant.client
        scope = oauth_request.scope or ""
        if decision == "deny":
            _forget(request_id)
            audit.record(
                reasons.OIDC_AUTHORIZE,
                reasons.FAILURE,
                reasons.ACCESS_DENIED,
                user_id=user.id,
                claimed_username=user.username,
                details={"client": client.get_client_id()},
            )
            return server.create_authorization_response(request=oauth_request, grant_user=None, grant=grant)
        if decision == "allow":
            _remember_consent(user.id, client, scope)
        elif not client.row.first_party and ("consent" in prompts or not _consented(user.id, client, scope)):
            if "none" in prompts:
                raise ConsentRequiredError(redirect_uri=grant.redirect_uri)
            return _consent_page(request_id, client, scope, grant.redirect_uri)
    except OAuth2Error as error:
        return _authorization_error(request_id, oauth_request, error)
    response = server.create_authorization_response(request=oauth_request, grant_user=user, grant=grant)
    if response.status_code == 302 and "code=" in response.headers.get("Location", ""):
        _forget(request_id)
        audit.record(
            reasons.OIDC_AUTHORIZE,
            reasons.SUCCESS,
            reasons.OK,
            user_id=user.id,
            claimed_username=user.username,
            details={"client": client.get_client_id(), "scope": scope},
        )
    return response


def _fresh_enough(pending: dict[str, Any], prompts: list[str], max_age_raw: str | None) -> bool:
    """``prompt=login`` needs a ceremony since the request came in; ``max_age`` one within that many seconds (or
    since the request came in: a step-up for ``max_age=0`` must not loop)."""
    auth_time = session_auth_time()
    if auth_time is None:
        return False
    # A ceremony since the request: sign_in rotated the session (new id) at or after the request's second.
    ceremony_since = context.browser_session().hash != pending["session"] and auth_time >= int(pending["created"])
    if "login" in prompts and not ceremony_since:
        return False
    if max_age_raw is not None:
        try:
            max_age = int(max_age_raw)
        except ValueError:
            return False
        if max_age < 0:
            return False
        if time.time() - auth_time > max_age and not ceremony_since:
            return False
    return True


def _step_up(here: str) -> Any:
    """A fresh ceremony for the signed-in user: the re-authentication page (reauth.py), which comes back here."""
    if "auth.reauth" in current_app.view_functions:
        return redirect(url_for("auth.reauth", next=here))
    # Without the re-authentication page: sign out, and the login page brings the user back.
    sign_out()
    return redirect(url_for("auth.login", next=here))


def _authorization_error(request_id: str, oauth_request: Any, error: OAuth2Error) -> Any:
    """An error goes back to the client only with a redirect URI validated against its registration; otherwise (no
    such client, a wrong or missing redirect URI) the user sees it here and nothing is redirected."""
    _forget(request_id)
    if getattr(error, "redirect_uri", None):
        error.state = oauth_request.payload.state
        return oidc.server().handle_error_response(oauth_request, error)
    return _invalid_request_page(error.description or error.error)


def _invalid_request_page(why: str) -> Any:
    return render_template(
        "error.html",
        status=400,
        title=_("This sign-in request is invalid"),
        # ``why`` is the protocol's own description (for the application's developer): not translated.
        message=_("The application sent a request faceauth cannot accept: %(why)s", why=why),
    ), 400


def _forget(request_id: str) -> None:
    context.redis().delete(_request_key(request_id))


def _consented(user_id: int, client: oidc.RegisteredClient, scope: str) -> bool:
    row = db().scalar(
        select(OAuthConsent).where(OAuthConsent.user_id == user_id, OAuthConsent.client_pk == client.row.id)
    )
    return row is not None and set(scope.split()) <= set(row.scopes.split())


def _remember_consent(user_id: int, client: oidc.RegisteredClient, scope: str) -> None:
    session = db()
    row = session.scalar(
        select(OAuthConsent).where(OAuthConsent.user_id == user_id, OAuthConsent.client_pk == client.row.id)
    )
    if row is None:
        session.add(OAuthConsent(user_id=user_id, client_pk=client.row.id, scopes=scope))
    else:
        row.scopes = " ".join(sorted(set(row.scopes.split()) | set(scope.split())))
    session.commit()


def _consent_page(request_id: str, client: oidc.RegisteredClient, scope: str, redirect_uri: str) -> Any:
    scopes = [(name, SCOPE_DESCRIPTIONS.get(name, name)) for name in scope.split()]
    body = render_template(
        "oidc/consent.html",
        client=client.row,
        scopes=scopes,
        request_id=request_id,
        redirect_host=urlsplit(redirect_uri).netloc,
        form=ActionForm(),
    )
    response = Response(body)
    # The form posts here, and the answer redirects to the client: Chromium applies form-action to that redirect.
    target = urlsplit(redirect_uri)
    origin = f"{target.scheme}://{target.netloc}"
    if all(char not in origin for char in " ;,'\"") and target.scheme in ("http", "https"):
        from auth_web.app import CONTENT_SECURITY_POLICY

        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", f"form-action 'self' {origin}"
        )
    return response


# -- token, userinfo, end-session --------------------------------------------------------------------------------


@bp.post("/oauth2/token")
@csrf.exempt  # the client authenticates itself (secret or PKCE); no browser session is involved
def token() -> Response:
    server = oidc.server()
    try:
        return server.create_token_response()  # type: ignore[no-any-return]
    except InsecureTransportError as error:
        return _insecure_transport(server, error)


@bp.route("/oauth2/userinfo", methods=["GET", "POST"])
@csrf.exempt  # bearer token, no cookie
def userinfo() -> Response:
    server = oidc.server()
    try:
        return server.create_endpoint_response("userinfo")  # type: ignore[no-any-return]
    except InsecureTransportError as error:
        return _insecure_transport(server, error)


def _insecure_transport(server: Any, error: InsecureTransportError) -> Response:
    """A plain-HTTP request (not through the TLS gateway): Authlib refuses it before its own error handling, so it
    is answered here as the OAuth error it is (400 insecure_transport), not a 500."""
    return server.handle_error_response(None, error)  # type: ignore[no-any-return]


@bp.route("/oauth2/logout", methods=["GET", "POST"])
def end_session() -> Any:
    """RP-initiated logout: with a valid ``id_token_hint`` the session ends at once and the browser goes to the
    ``post_logout_redirect_uri`` only when the client registered exactly that URI; without one, the user confirms."""
    if request.method == "POST" and not ActionForm().validate_on_submit():
        abort(400)
    server = oidc.server()
    try:
        end_request = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return render_template(
            "error.html",
            status=400,
            title=_("This sign-out request is invalid"),
            message=_(
                "The application sent a request faceauth cannot accept: %(why)s", why=error.description or error.error
            ),
        ), 400
    if end_request.needs_confirmation and request.method == "GET" and g.get("user") is not None:
        client = end_request.client
        return render_template(
            "oidc/logout.html",
            client=client.row if client is not None else None,
            fields={k: v for k, v in request.args.items() if k in ("client_id", "post_logout_redirect_uri", "state")},
            form=ActionForm(),
        )
    response = server.create_endpoint_response("end_session", end_request)
    if response is not None:
        return response
    return render_template("oidc/signed_out.html")


# -- the account page's "Apps you signed in to" ---------------------------------------------------------------------


@bp.app_context_processor
def _account_apps() -> dict[str, Any]:
    return {"connected_apps": _connected_apps}


def _connected_apps() -> list[OAuthConsent]:
    user = g.get("user")
    if user is None:
        return []
    statement = select(OAuthConsent).where(OAuthConsent.user_id == user.id).order_by(OAuthConsent.created_at.desc())
    return list(db().scalars(statement))


@bp.post("/account/apps/<int:consent_id>/revoke")
@login_required
def revoke_consent(consent_id: int) -> Response:
    """Take back a consent: the app asks again next time, and its refresh tokens for this user stop working."""
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db()
    row = session.get(OAuthConsent, consent_id) if 0 < consent_id < 2**31 else None
    if row is None or row.user_id != g.user.id:
        abort(404)
    client_name, client_id = row.client.name, row.client.client_id
    session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.user_id == g.user.id,
            RefreshToken.client_pk == row.client_pk,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    session.delete(row)
    session.commit()
    audit.record(
        reasons.OIDC_CONSENT_REVOKE,
        reasons.SUCCESS,
        reasons.OK,
        user_id=g.user.id,
        claimed_username=g.user.username,
        details={"client": client_id},
    )
    flash(f"{client_name} no longer has access; it will ask again next time.", "success")
    return redirect(url_for("account.dashboard"))  # type: ignore[return-value]
