"""The nginx forward-auth snippet, for real: the gateway's /demo/protected/ behind auth_request to auth-web's
/auth/verify (the same configuration docs/oidc.md gives to copy). Signed out: a redirect to the sign-in that comes
back; signed in: the page, with the user and groups from the Remote-* headers."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from conftest import free_port

from .test_gateway import NGINX, client, start_gateway, tls_pair  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)")


@dataclass
class AuthWeb:
    address: str
    app: object
    database_url: str


@pytest.fixture(scope="module")
def auth_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthWeb]:
    """The real app with a migrated SQLite database, served in a thread behind the gateway."""
    import redis
    from werkzeug.serving import make_server

    from auth_web import create_app
    from auth_web.config import Settings
    from auth_web.migrate import upgrade

    prefix = f"faceauth_test_{secrets.token_hex(6)}:"
    database_url = f"sqlite:///{tmp_path_factory.mktemp('auth-web') / 'db.sqlite3'}"
    upgrade(database_url)
    settings = Settings(
        secret_key="gateway-test-secret-key-0123456789abcdef",
        database_url=database_url,
        redis_prefix=prefix,
        liveness_target=f"127.0.0.1:{free_port()}",
        recognition_target=f"127.0.0.1:{free_port()}",
        proxy_count=1,
    )
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield AuthWeb(f"127.0.0.1:{server.server_port}", app, database_url)
    server.shutdown()
    redis_client = redis.Redis.from_url(settings.redis_url)
    keys = list(redis_client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        redis_client.delete(*keys)
    redis_client.close()


def session_cookie_for(auth_web: AuthWeb, username: str, groups: list[str]) -> str:
    """A signed-in session for a new user (what a password + face sign-in leaves), as its cookie value."""
    from auth_web.accounts import normalize_username
    from auth_web.groups import set_user_groups
    from auth_web.models import User

    engine = create_engine(auth_web.database_url)
    with Session(engine) as session:
        user = User(username=username, username_key=normalize_username(username), password_hash=None)
        session.add(user)
        session.flush()
        set_user_groups(session, user, groups)
        session.commit()
        user_id = user.id
    engine.dispose()
    test_client = auth_web.app.test_client()  # type: ignore[attr-defined]
    with test_client.session_transaction() as flask_session:
        flask_session["user_id"] = user_id
        flask_session["auth_time"] = 1
        flask_session["amr"] = ["pwd", "face", "mfa"]
    cookie = test_client.get_cookie("faceauth_session")
    assert cookie is not None
    return cookie.value


def test_nginx_auth_request_protects_the_demo_path(start_gateway, auth_web: AuthWeb, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    gateway = start_gateway([auth_web.address])
    protected = gateway.base + "/demo/protected/page?x=1&y=2"
    # Signed out: nginx sends the visitor to faceauth's sign-in, which would come back to the page.
    response = client.get(protected)
    assert response.status_code == 302
    start = response.headers["location"]
    assert start == f"{gateway.base}/auth/start?rd={protected}"
    to_login = client.get(start)
    assert to_login.status_code == 302 and "/login?next=/auth/back/" in to_login.headers["location"]
    back = parse_qs(urlsplit(to_login.headers["location"]).query)["next"][0]
    # Signed in: the page, naming the user from Remote-User and the groups from Remote-Groups.
    username = "fwd" + secrets.token_hex(3)
    cookie = session_cookie_for(auth_web, username, ["staff"])
    page = client.get(protected, headers={"Cookie": f"faceauth_session={cookie}"})
    assert page.status_code == 200
    assert page.text == f"faceauth forward-auth demo: signed in as {username} (groups: staff)\n"
    # After signing in, faceauth sends the browser back to the page it wanted, query string and all.
    returned = client.get(gateway.base + back, headers={"Cookie": f"faceauth_session={cookie}"})
    assert returned.status_code == 302 and returned.headers["location"] == protected
    # A forged cookie is no session.
    forged = client.get(protected, headers={"Cookie": "faceauth_session=" + secrets.token_urlsafe(32)})
    assert forged.status_code == 302
    # The verify subrequest is internal: not reachable from outside.
    assert client.get(gateway.base + "/_faceauth/verify").status_code == 404


def test_docs_nginx_snippet_matches_the_gateway() -> None:
    """docs/oidc.md's nginx snippet is the gateway's own configuration (so the test above exercises it)."""
    repo = Path(__file__).resolve().parents[2]
    template = (repo / "gateway" / "nginx.conf.template").read_text()
    docs = (repo / "docs" / "oidc.md").read_text()
    for line in (
        "auth_request /_faceauth/verify;",
        "auth_request_set $faceauth_user $upstream_http_remote_user;",
        "error_page 401 = @faceauth_sign_in;",
        "proxy_pass_request_body off;",
        'proxy_set_header Content-Length "";',
        "return 302 /auth/start?rd=$scheme://$http_host$request_uri;",
    ):
        assert line in template and line in docs, line
