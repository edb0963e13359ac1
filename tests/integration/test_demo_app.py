"""The demo relying party (examples/demo-app) against a real auth-web over HTTP: Authlib's client does discovery,
the authorization request (state, nonce, PKCE), the code exchange and the ID token's checks against faceauth's
JWKS; the page then says who signed in and how. The browser is played by two test clients (the user is signed in
at faceauth already: the browser test, tests/e2e/test_browser_oidc.py, does the password + face part)."""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from conftest import REPO_ROOT, throwaway_database, throwaway_redis_prefix

sys.path.insert(0, str(REPO_ROOT / "examples" / "demo-app"))

DEMO_URL = "https://demo.test"


@dataclass
class Provider:
    url: str
    app: object
    database_url: str


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    from werkzeug.serving import make_server

    from auth_web import create_app
    from auth_web.config import Settings
    from auth_web.migrate import upgrade
    from conftest import free_port

    with throwaway_database() as database_url, throwaway_redis_prefix() as prefix:
        upgrade(database_url)
        port = free_port()
        settings = Settings(
            secret_key="demo-test-secret-key-0123456789abcdef",
            database_url=database_url,
            redis_prefix=prefix,
            liveness_target=f"127.0.0.1:{free_port()}",
            recognition_target=f"127.0.0.1:{free_port()}",
            oidc_issuer=f"http://127.0.0.1:{port}",
        )
        app = create_app(settings)
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield Provider(f"http://127.0.0.1:{port}", app, database_url)
        server.shutdown()
        create_engine(database_url).dispose()


def register_demo(provider: Provider, first_party: bool) -> tuple[str, str]:
    from auth_web import oidc_clients

    engine = create_engine(provider.database_url)
    with Session(engine) as session:
        created = oidc_clients.create_client(
            session,
            name="Demo app",
            redirect_uris=[DEMO_URL + "/callback"],
            post_logout_redirect_uris=[DEMO_URL + "/"],
            first_party=first_party,
        )
        session.commit()
        result = (created.client.client_id, created.secret or "")
    engine.dispose()
    return result


def signed_in_browser(provider: Provider, amr: list[str]) -> tuple[object, str]:
    from auth_web.accounts import normalize_username
    from auth_web.models import User

    username = "demo" + secrets.token_hex(3)
    engine = create_engine(provider.database_url)
    with Session(engine) as session:
        user = User(username=username, username_key=normalize_username(username), password_hash=None)
        session.add(user)
        session.commit()
        user_id = user.id
    engine.dispose()
    browser = provider.app.test_client()  # type: ignore[attr-defined]
    import time

    with browser.session_transaction() as flask_session:
        flask_session["user_id"] = user_id
        flask_session["auth_time"] = int(time.time())
        flask_session["amr"] = amr
    return browser, username


def demo_client(provider: Provider, client_id: str, secret: str):  # type: ignore[no-untyped-def]
    from demo_app import DemoSettings, create_app

    settings = DemoSettings(
        issuer=provider.url, client_id=client_id, client_secret=secret, public_url=DEMO_URL, secret_key="k" * 32
    )
    return create_app(settings).test_client()


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_demo_app_signs_in_with_faceauth_and_shows_how(provider: Provider) -> None:
    client_id, secret = register_demo(provider, first_party=False)
    demo = demo_client(provider, client_id, secret)
    faceauth, username = signed_in_browser(provider, ["pwd", "face", "mfa"])
    start = demo.get("/login")
    assert start.status_code == 302 and start.headers["Location"].startswith(provider.url + "/oauth2/authorize?")
    query = urlsplit(start.headers["Location"]).query
    assert "code_challenge_method=S256" in query and "nonce=" in query and "state=" in query
    consent = faceauth.get(local(start.headers["Location"]))  # type: ignore[attr-defined]
    assert consent.status_code == 200 and "Demo app" in consent.get_data(as_text=True)
    page = consent.get_data(as_text=True)
    action = "/oauth2/continue/" + page.split('action="/oauth2/continue/')[1].split('"')[0]
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    allowed = faceauth.post(action, data={"decision": "allow", "csrf_token": token})  # type: ignore[attr-defined]
    assert allowed.status_code == 302 and allowed.headers["Location"].startswith(DEMO_URL + "/callback?")
    back = demo.get(local(allowed.headers["Location"]))
    assert back.status_code == 302, back.get_data(as_text=True)
    shown = demo.get("/").get_data(as_text=True)
    assert f'<strong id="username">{username}</strong>' in shown
    assert "via face" in shown and '<code id="amr">pwd face mfa</code>' in shown
    assert '<code id="acr">urn:faceauth:acr:face+mfa</code>' in shown
    assert f'data-claim="iss">{provider.url}<' in shown and f'data-claim="aud">{client_id}<' in shown
    # Signing out goes through faceauth's end-session endpoint with the ID token, back to the demo.
    out = demo.post("/logout")
    assert out.status_code == 302 and out.headers["Location"].startswith(provider.url + "/oauth2/logout?id_token_hint=")
    ended = faceauth.get(local(out.headers["Location"]))  # type: ignore[attr-defined]
    assert ended.status_code == 302 and ended.headers["Location"] == DEMO_URL + "/"
    assert faceauth.get("/account").status_code == 302  # type: ignore[attr-defined]


def test_demo_app_refuses_a_tampered_callback(provider: Provider) -> None:
    client_id, secret = register_demo(provider, first_party=True)
    demo = demo_client(provider, client_id, secret)
    faceauth, _username = signed_in_browser(provider, ["pwd"])
    start = demo.get("/login")
    issued = faceauth.get(local(start.headers["Location"]))  # type: ignore[attr-defined]
    callback = local(issued.headers["Location"])
    forged_state = demo.get(callback.replace("state=", "state=x"))
    assert forged_state.status_code == 400
    assert "Not signed in" in demo.get("/").get_data(as_text=True)


def test_demo_app_says_when_the_login_had_no_face(provider: Provider) -> None:
    client_id, secret = register_demo(provider, first_party=True)
    demo = demo_client(provider, client_id, secret)
    faceauth, _username = signed_in_browser(provider, ["pwd"])
    start = demo.get("/login")
    issued = faceauth.get(local(start.headers["Location"]))  # type: ignore[attr-defined]
    assert demo.get(local(issued.headers["Location"])).status_code == 302
    shown = demo.get("/").get_data(as_text=True)
    assert "without a face" in shown and "urn:faceauth:acr:basic" in shown


def test_demo_app_readme_exists() -> None:
    assert (Path(REPO_ROOT) / "examples" / "demo-app" / "README.md").is_file()
