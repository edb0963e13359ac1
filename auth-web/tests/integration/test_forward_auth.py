"""Forward-auth (/auth/verify, /auth/start): the Remote-* headers for a session, 401 or a sign-in redirect without
one, and no redirect to a domain that is not configured."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from auth_web.groups import GroupNameError, set_user_groups, validate_group_name
from auth_web.models import User

from .conftest import Browser, create_user, unique_username
from .test_oidc import sign_in_as


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(forward_auth_domains=(".apps.test", "exact.test"))


def test_signed_in_session_gets_200_with_remote_headers(app: Flask, db_engine) -> None:  # type: ignore[no-untyped-def]
    username = unique_username("fwd")
    user_id = create_user(db_engine, username, role="admin")
    with Session(db_engine) as session:
        user = session.get(User, user_id)
        assert user is not None
        set_user_groups(session, user, ["staff", "Dev-Ops"])
        session.commit()
    browser = Browser(app.test_client())
    sign_in_as(browser, user_id)
    response = browser.client.get("/auth/verify")
    assert response.status_code == 200
    assert response.headers["Remote-User"] == username and response.headers["Remote-Name"] == username
    assert response.headers["Remote-Groups"] == "admin,dev-ops,staff"
    assert "Remote-Email" not in response.headers  # no address on the account
    assert response.headers["Cache-Control"] == "no-store"


def test_no_session_gets_401(app: Flask) -> None:
    response = app.test_client().get("/auth/verify")
    assert response.status_code == 401 and "Remote-User" not in response.headers


def test_disabled_user_gets_401(app: Flask, db_engine) -> None:  # type: ignore[no-untyped-def]
    user_id = create_user(db_engine, unique_username("fwd"))
    browser = Browser(app.test_client())
    sign_in_as(browser, user_id)
    with Session(db_engine) as session:
        user = session.get(User, user_id)
        assert user is not None
        user.status = "disabled"
        session.commit()
    assert browser.client.get("/auth/verify").status_code == 401


@pytest.mark.parametrize(
    "target",
    ["https://wiki.apps.test/page?x=1", "https://apps.test/", "https://exact.test/a", "http://localhost/own-host"],
)
def test_allowed_return_url_redirects_to_sign_in_and_back(app: Flask, db_engine, target: str) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(app.test_client())
    response = browser.client.get("/auth/verify?rd=" + quote(target, safe=""))
    assert response.status_code == 302
    start = response.headers["Location"]
    assert urlsplit(start).path == "/auth/start" and parse_qs(urlsplit(start).query)["rd"] == [target]
    to_login = browser.client.get(urlsplit(start).path + "?" + urlsplit(start).query)
    assert to_login.status_code == 302 and "/login?next=" in to_login.headers["Location"]
    back = parse_qs(urlsplit(to_login.headers["Location"]).query)["next"][0]
    sign_in_as(browser, create_user(db_engine, unique_username("fwd")))
    final = browser.client.get(back)
    assert final.status_code == 302 and final.headers["Location"] == target
    assert browser.client.get(back).headers["Location"].endswith("/account")  # spent


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.test/",
        "https://apps.test.evil.test/",
        "https://evilapps.test/",
        "https://exact.test.evil/",
        "https://sub.exact.test/",  # exact.test has no leading dot: no subdomains
        "javascript:alert(1)",
        "//evil.test/",
        "https://evil.test\\@wiki.apps.test/",
        "https://wiki.apps.test@evil.test/",
        "/relative",
    ],
)
def test_return_url_to_a_foreign_domain_is_refused(app: Flask, target: str) -> None:
    client = app.test_client()
    verify = client.get("/auth/verify?rd=" + quote(target, safe=""))
    assert verify.status_code == 401 and "Location" not in verify.headers
    start = client.get("/auth/start?rd=" + quote(target, safe=""))
    assert start.status_code == 400 and "Location" not in start.headers


def test_traefik_and_caddy_headers_give_the_return_url(app: Flask) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "grafana.apps.test", "X-Forwarded-Uri": "/d/1?x=2"}
    response = app.test_client().get("/auth/verify", headers=headers)
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["Location"]).query)["rd"] == ["https://grafana.apps.test/d/1?x=2"]
    foreign = {**headers, "X-Forwarded-Host": "evil.test"}
    assert app.test_client().get("/auth/verify", headers=foreign).status_code == 401


def test_login_url_and_cookie_domain_settings(make_app: Callable[..., Flask], db_engine) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        forward_auth_domains=(".apps.test",),
        forward_auth_login_url="https://auth.apps.test/auth/start",
        session_cookie_domain=".apps.test",
    )
    browser = Browser(app.test_client())
    response = browser.client.get("/auth/verify?rd=" + quote("https://x.apps.test/", safe=""))
    assert response.headers["Location"].startswith("https://auth.apps.test/auth/start?rd=")
    page = browser.client.get("/login")
    assert "Domain=apps.test" in page.headers.get("Set-Cookie", "") or "Domain=.apps.test" in page.headers.get(
        "Set-Cookie", ""
    )


def test_group_names_are_validated() -> None:
    assert validate_group_name(" Staff ") == "staff"
    for bad in ("", "a b", "a,b", "admin", "-x", "x" * 65):
        with pytest.raises(GroupNameError):
            validate_group_name(bad)


def test_start_takes_an_unencoded_return_url_whole(app: Flask, db_engine) -> None:  # type: ignore[no-untyped-def]
    """nginx's error_page puts the URL after rd= as it is; its own & parameters belong to it."""
    browser = Browser(app.test_client())
    sign_in_as(browser, create_user(db_engine, unique_username("fwd")))
    response = browser.client.get("/auth/start?rd=https://wiki.apps.test/p?a=1&b=2")
    assert response.status_code == 302 and response.headers["Location"] == "https://wiki.apps.test/p?a=1&b=2"
    encoded = browser.client.get("/auth/start?rd=" + quote("https://wiki.apps.test/p?a=1&b=2", safe=""))
    assert encoded.headers["Location"] == "https://wiki.apps.test/p?a=1&b=2"
    assert browser.client.get("/auth/start?rd=https://evil.test/?https://wiki.apps.test/").status_code == 400
