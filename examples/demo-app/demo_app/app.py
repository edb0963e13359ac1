"""The demo relying party: "Sign in with faceauth", then who signed in and how (the ID token's claims).

Authlib's Flask client does the protocol: discovery, the authorization request with ``state``, ``nonce`` and PKCE
(S256), the code exchange, and the ID token's checks (signature against faceauth's JWKS, ``iss``, ``aud``, ``exp``,
``nonce``). This app only shows the result and signs out through faceauth's end-session endpoint.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, render_template, session, url_for
from werkzeug.wrappers import Response


@dataclass(frozen=True)
class DemoSettings:
    issuer: str  # faceauth's issuer URL (its discovery document is under it)
    client_id: str
    client_secret: str
    public_url: str  # this app's own URL, for its redirect URIs
    secret_key: str
    listen: str = "127.0.0.1:8090"
    # A CA bundle to trust faceauth's certificate with (the local run's is self-signed); empty: the system's.
    ca_bundle: str = ""
    # "face" asks for a fresh face ceremony at every sign-in (max_age=0); "" takes the faceauth session as it is.
    require_fresh: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DemoSettings:
        env = os.environ if env is None else env
        missing = [name for name in ("DEMO_ISSUER", "DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET") if not env.get(name)]
        if missing:
            raise SystemExit(f"demo-app: set {', '.join(missing)} (see examples/demo-app/README.md)")
        listen = env.get("DEMO_LISTEN", "127.0.0.1:8090")
        return cls(
            issuer=env["DEMO_ISSUER"].rstrip("/"),
            client_id=env["DEMO_CLIENT_ID"],
            client_secret=env["DEMO_CLIENT_SECRET"],
            public_url=env.get("DEMO_PUBLIC_URL", f"http://{listen}").rstrip("/"),
            secret_key=env.get("DEMO_SECRET_KEY") or secrets.token_urlsafe(32),
            listen=listen,
            ca_bundle=env.get("DEMO_CA_BUNDLE", ""),
            require_fresh=env.get("DEMO_REQUIRE_FRESH", "").lower() in ("1", "true", "yes"),
        )


def create_app(settings: DemoSettings) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key, SESSION_COOKIE_NAME="demo_session", SESSION_COOKIE_SAMESITE="Lax")
    oauth = OAuth(app)
    client_kwargs: dict[str, Any] = {"scope": "openid profile email groups", "code_challenge_method": "S256"}
    if settings.ca_bundle:
        client_kwargs["verify"] = settings.ca_bundle
        # requests prefers REQUESTS_CA_BUNDLE (often set system-wide) over a session's own `verify`.
        os.environ["REQUESTS_CA_BUNDLE"] = settings.ca_bundle
    faceauth = oauth.register(
        "faceauth",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=settings.issuer + "/.well-known/openid-configuration",
        client_kwargs=client_kwargs,
    )

    issuer_parts = urlsplit(settings.issuer)
    issuer_origin = f"{issuer_parts.scheme}://{issuer_parts.netloc}"

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # The sign-out form redirects to faceauth's end-session endpoint: form-action must allow its origin.
        response.headers.setdefault(
            "Content-Security-Policy",
            f"default-src 'none'; style-src 'self'; form-action 'self' {issuer_origin}; frame-ancestors 'none'",
        )
        return response

    @app.get("/")
    def index() -> str:
        claims = session.get("claims")
        return render_template(
            "index.html",
            claims=claims,
            issuer=settings.issuer,
            id_token=session.get("id_token"),
            nonce_sent=session.get("nonce_sent"),
        )

    @app.get("/login")
    def login() -> Response:
        extra: dict[str, Any] = {"max_age": 0} if settings.require_fresh else {}
        # Our own nonce (Authlib keeps it with the state and checks the ID token's against it), shown on the page.
        nonce = secrets.token_urlsafe(16)
        session["nonce_sent"] = nonce
        redirect_uri = settings.public_url + url_for("callback")
        return faceauth.authorize_redirect(redirect_uri, nonce=nonce, **extra)  # type: ignore[no-any-return]

    @app.get("/callback")
    def callback() -> Response | tuple[str, int]:
        try:
            token = faceauth.authorize_access_token()
        except Exception as error:  # any protocol error ends here, shown to the user
            return render_template("error.html", error=str(error)), 400
        nonce_sent = session.get("nonce_sent")
        session.clear()
        session["claims"] = dict(token["userinfo"])  # the ID token's claims, verified by Authlib
        session["id_token"] = token["id_token"]
        session["nonce_sent"] = nonce_sent
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> Response:
        id_token = session.pop("id_token", None)
        session.clear()
        metadata = faceauth.load_server_metadata()
        end_session = metadata.get("end_session_endpoint")
        if not end_session or not id_token:
            return redirect(url_for("index"))
        query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": settings.public_url + "/"})
        return redirect(f"{end_session}?{query}")

    return app
