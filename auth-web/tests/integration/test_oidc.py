"""The OpenID Connect provider, attacked through its endpoints: PKCE, redirect URIs, codes, step-up, keys, logout,
refresh-token reuse, consent, client authentication; ID tokens verified with joserfc against the published JWKS."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from auth_web import oidc_clients, oidc_keys
from auth_web.models import User
from auth_web.oidc_models import RefreshToken, SigningKey

from .conftest import PASSWORD, Browser, FakeLiveness, FakeRecognition, create_user, unique_username

ISSUER = "https://auth.test"
REDIRECT = "https://app.test/callback"
LOGOUT_REDIRECT = "https://app.test/signed-out"


@dataclass
class Client:
    client_id: str
    secret: str | None


@pytest.fixture
def oidc_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(oidc_issuer=ISSUER)


def register(engine, **options: Any) -> Client:  # type: ignore[no-untyped-def]
    options.setdefault("name", "Test app")
    options.setdefault("redirect_uris", [REDIRECT])
    options.setdefault("post_logout_redirect_uris", [LOGOUT_REDIRECT])
    with Session(engine) as session:
        created = oidc_clients.create_client(session, **options)
        session.commit()
        return Client(created.client.client_id, created.secret)


def sign_in_as(browser: Browser, user_id: int, amr: tuple[str, ...] = ("pwd", "face", "mfa")) -> None:
    """What auth_helpers.sign_in leaves in the session after a password + face login."""
    with browser.client.session_transaction() as session:
        session.rotate()  # type: ignore[attr-defined]
        session.clear()
        session["user_id"] = user_id
        session["auth_time"] = int(time.time())
        session["amr"] = list(amr)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, create_s256_code_challenge(verifier)


def authorize(browser: Browser, client_id: str, **params: Any):  # type: ignore[no-untyped-def]
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile email groups",
        "state": "state-123",
        "nonce": secrets.token_urlsafe(8),  # a nonce is single-use per client
        **params,
    }
    query = {k: v for k, v in query.items() if v is not None}
    return browser.client.get("/oauth2/authorize?" + urlencode(query))


def redirected_params(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, (response.status_code, response.get_data(as_text=True)[:500])
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def basic(client: Client) -> dict[str, str]:
    raw = f"{client.client_id}:{client.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def exchange(browser: Browser, client: Client, code: str, **extra: Any):  # type: ignore[no-untyped-def]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    headers = {}
    if client.secret is None:
        data["client_id"] = client.client_id
    else:
        headers = basic(client)
    return browser.client.post("/oauth2/token", data=data, headers=headers)


def verify_id_token(browser: Browser, id_token: str, client_id: str, nonce: str | None = None) -> dict[str, Any]:
    """Signature against JWKS, iss, aud, exp; the nonce when given (code_flow's tokens carry the one it sent)."""
    keys = KeySet.import_key_set(browser.client.get("/oauth2/jwks").get_json())
    token = jwt.decode(id_token, keys, algorithms=["ES256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client_id},
        nonce={"essential": nonce is not None, "value": nonce},
        exp={"essential": True},
        sub={"essential": True},
    ).validate(token.claims)
    return dict(token.claims)


def code_flow(browser: Browser, client: Client, **params: Any) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    params.setdefault("nonce", secrets.token_urlsafe(8))
    response = authorize(browser, client.client_id, code_challenge=challenge, code_challenge_method="S256", **params)
    code = redirected_params(response)["code"]
    tokens = exchange(browser, client, code, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    return {**tokens.get_json(), "nonce_sent": params["nonce"]}


@pytest.fixture
def user_id(db_engine) -> int:  # type: ignore[no-untyped-def]
    return create_user(db_engine, unique_username("rp"))


# -- discovery, keys, the ID token ------------------------------------------------------------------------------


def test_discovery_and_jwks_are_cacheable_and_describe_the_provider(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200 and "max-age" in response.headers["Cache-Control"]
    document = response.get_json()
    assert document["issuer"] == ISSUER
    assert document["authorization_endpoint"] == ISSUER + "/oauth2/authorize"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "face" not in document["acr_values_supported"]  # URNs, documented in docs/oidc.md
    jwks = client.get("/oauth2/jwks")
    assert "max-age" in jwks.headers["Cache-Control"]
    keys = jwks.get_json()["keys"]
    assert len(keys) >= 1 and all("d" not in key for key in keys)  # public halves only
    # Everything else stays no-store.
    assert client.get("/oauth2/authorize").headers["Cache-Control"] == "no-store"


def test_code_flow_id_token_verifies_against_jwks_with_claims(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    tokens = code_flow(browser, client)
    claims = verify_id_token(browser, tokens["id_token"], client.client_id, tokens["nonce_sent"])
    with pytest.raises(Exception):  # noqa: B017 (joserfc's own error classes): another nonce
        verify_id_token(browser, tokens["id_token"], client.client_id, "another-nonce")
    with Session(db_engine) as session:
        user = session.get(User, user_id)
        assert user is not None
        username = user.username
    assert claims["sub"] != username and claims["sub"] != str(user_id) and len(claims["sub"]) >= 20
    assert claims["preferred_username"] == username
    assert claims["amr"] == ["pwd", "face", "mfa"] and claims["acr"] == "urn:faceauth:acr:face+mfa"
    assert abs(claims["auth_time"] - time.time()) < 30
    assert claims["groups"] == []
    assert tokens["expires_in"] <= 300 and "refresh_token" not in tokens
    # The same sub every time; userinfo agrees.
    again = verify_id_token(browser, code_flow(browser, client)["id_token"], client.client_id)
    assert again["sub"] == claims["sub"]
    info = browser.client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert info.status_code == 200 and info.get_json()["sub"] == claims["sub"]
    assert browser.client.get("/oauth2/userinfo", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_a_forged_or_foreign_signature_fails_verification(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    from joserfc.jwk import ECKey

    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    claims = verify_id_token(browser, code_flow(browser, client)["id_token"], client.client_id)
    forged = jwt.encode({"alg": "ES256", "kid": "x"}, claims, ECKey.generate_key("P-256"))
    with pytest.raises(Exception):  # noqa: B017 (joserfc raises its own error classes)
        verify_id_token(browser, forged, client.client_id)
    with pytest.raises(Exception):  # noqa: B017
        verify_id_token(browser, code_flow(browser, client)["id_token"], "another-client")


def test_signing_keys_are_sealed_not_stored_in_plaintext(oidc_app: Flask, db_engine) -> None:  # type: ignore[no-untyped-def]
    oidc_app.test_client().get("/oauth2/jwks")
    with Session(db_engine) as session:
        row = session.scalars(select(SigningKey).order_by(SigningKey.id.desc())).first()
        assert row is not None
        settings = oidc_app.config["FACEAUTH_SETTINGS"]
        private = oidc_keys.private_key(row, settings.template_cipher).as_dict(private=True)
        raw = session.execute(text("SELECT private_sealed FROM oidc_signing_keys WHERE id = :id"), {"id": row.id})
        sealed = bytes(raw.scalar_one())
    assert private["d"].encode() not in sealed and b'"d"' not in sealed
    assert "d" not in row.public_jwk


# -- PKCE, redirect URIs, client authentication ----------------------------------------------------------------------


def test_public_client_without_pkce_is_refused(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, auth_method="none", first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    params = redirected_params(authorize(browser, client.client_id))
    assert params["error"] == "invalid_request" and "code" not in params and params["state"] == "state-123"
    # plain is not S256
    verifier = secrets.token_urlsafe(48)
    params = redirected_params(
        authorize(browser, client.client_id, code_challenge=verifier, code_challenge_method="plain")
    )
    assert params["error"] == "invalid_request"


def test_pkce_verifier_is_checked(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, auth_method="none", first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    verifier, challenge = pkce_pair()
    for wrong in (None, secrets.token_urlsafe(48)):
        response = authorize(browser, client.client_id, code_challenge=challenge, code_challenge_method="S256")
        code = redirected_params(response)["code"]
        extra = {"code_verifier": wrong} if wrong else {}
        refused = exchange(browser, client, code, **extra)
        assert refused.status_code == 400 and "access_token" not in refused.get_json()
    code = redirected_params(
        authorize(browser, client.client_id, code_challenge=challenge, code_challenge_method="S256")
    )["code"]
    assert exchange(browser, client, code, code_verifier=verifier).status_code == 200


@pytest.mark.parametrize(
    "redirect_uri",
    [None, "https://evil.test/callback", REDIRECT + "/more", REDIRECT + "?x=1", "https://app.test/callback#f"],
)
def test_wrong_or_missing_redirect_uri_is_refused_without_redirecting(  # type: ignore[no-untyped-def]
    oidc_app: Flask, db_engine, user_id: int, redirect_uri: str | None
) -> None:
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    _verifier, challenge = pkce_pair()
    response = authorize(
        browser, client.client_id, redirect_uri=redirect_uri, code_challenge=challenge, code_challenge_method="S256"
    )
    assert response.status_code == 400 and "Location" not in response.headers


def test_token_request_with_another_redirect_uri_is_refused(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True, redirect_uris=[REDIRECT, "https://app.test/other"])
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    code = redirected_params(authorize(browser, client.client_id))["code"]
    refused = exchange(browser, client, code, redirect_uri="https://app.test/other")
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"


def test_confidential_client_with_a_wrong_secret_is_refused(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    code = redirected_params(authorize(browser, client.client_id))["code"]
    wrong = Client(client.client_id, "not-the-secret")
    assert exchange(browser, wrong, code).status_code == 401
    # Nor as a public client (no secret at all), nor with the secret in the body for a basic-auth client.
    code = redirected_params(authorize(browser, client.client_id))["code"]
    public_try = exchange(browser, Client(client.client_id, None), code)
    assert public_try.status_code in (400, 401) and "access_token" not in public_try.get_json()
    code = redirected_params(authorize(browser, client.client_id))["code"]
    post = browser.client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client.client_id,
            "client_secret": client.secret,
        },
    )
    assert post.status_code in (400, 401)


def test_client_secret_post_works_for_a_client_registered_with_it(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True, auth_method="client_secret_post")
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    code = redirected_params(authorize(browser, client.client_id))["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client.client_id,
        "client_secret": client.secret,
    }
    assert browser.client.post("/oauth2/token", data=data).status_code == 200


# -- codes -----------------------------------------------------------------------------------------------------------


def test_code_is_single_use_and_its_reuse_revokes_what_it_issued(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    code = redirected_params(authorize(browser, client.client_id))["code"]
    first = exchange(browser, client, code)
    assert first.status_code == 200
    access = first.get_json()["access_token"]
    bearer = {"Authorization": "Bearer " + access}
    assert browser.client.get("/oauth2/userinfo", headers=bearer).status_code == 200
    second = exchange(browser, client, code)
    assert second.status_code == 400 and second.get_json()["error"] == "invalid_grant"
    assert browser.client.get("/oauth2/userinfo", headers=bearer).status_code == 401


def test_code_is_short_lived(make_app: Callable[..., Flask], db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    app = make_app(oidc_issuer=ISSUER, oidc_code_seconds=1)
    client = register(db_engine, first_party=True)
    browser = Browser(app.test_client())
    sign_in_as(browser, user_id)
    code = redirected_params(authorize(browser, client.client_id))["code"]
    time.sleep(1.3)
    late = exchange(browser, client, code)
    assert late.status_code == 400 and late.get_json()["error"] == "invalid_grant"
    # The default lifetime is a minute.
    assert oidc_app_default_code_seconds() == 60


def oidc_app_default_code_seconds() -> int:
    from auth_web.config import Settings

    return Settings.from_env({}).oidc_code_seconds


def test_a_replayed_nonce_is_refused(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    assert "code" in redirected_params(authorize(browser, client.client_id, nonce="once"))
    assert redirected_params(authorize(browser, client.client_id, nonce="once"))["error"] == "invalid_request"


# -- sign-in, step-up ------------------------------------------------------------------------------------------------


def test_signed_out_user_goes_to_login_and_comes_back_to_the_request(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    response = authorize(browser, client.client_id)
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]
    resume = parse_qs(urlsplit(response.headers["Location"]).query)["next"][0]
    assert resume.startswith("/oauth2/continue/")
    sign_in_as(browser, user_id)
    params = redirected_params(browser.client.get(resume))
    assert params["state"] == "state-123" and params["code"]
    # The stored request is spent with its code.
    assert browser.client.get(resume).status_code == 400


def test_prompt_none_without_a_session_answers_login_required(oidc_app: Flask, db_engine) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    assert redirected_params(authorize(browser, client.client_id, prompt="none"))["error"] == "login_required"


def test_prompt_login_forces_a_new_face_capture(  # type: ignore[no-untyped-def]
    make_app: Callable[..., Flask], fake_grpc, db_engine, frames_a_login
) -> None:
    fake = fake_grpc(liveness=FakeLiveness(), recognition=FakeRecognition())
    app = make_app(oidc_issuer=ISSUER, liveness_target=fake.address, recognition_target=fake.address)
    username = unique_username("stepup")
    create_user(db_engine, username, templates=3)
    client = register(db_engine, first_party=True)
    browser = Browser(app.test_client())
    assert ceremony(browser, username, frames_a_login, "/login").status_code == 200
    captures = fake.liveness.calls
    # Without prompt=login the session's ceremony is enough.
    assert "code" in redirected_params(authorize(browser, client.client_id))
    time.sleep(1.1)  # the next ceremony's auth_time is a later second
    for params in ({"prompt": "login"}, {"max_age": "0"}):
        response = authorize(browser, client.client_id, **params)
        assert response.status_code == 302, response.get_data(as_text=True)
        location = response.headers["Location"]
        assert not location.startswith(REDIRECT) and ("/reauth" in location or "/login" in location)
        resume = parse_qs(urlsplit(location).query)["next"][0]
        # Coming back without a new ceremony gets no code either.
        assert not browser.client.get(resume).headers.get("Location", "").startswith(REDIRECT)
        assert fake.liveness.calls == captures
        started = int(time.time())
        # The page it was sent to (the re-authentication page: the login flow for the signed-in user).
        assert ceremony(browser, username, frames_a_login, location).status_code == 200
        assert fake.liveness.calls == captures + 1
        captures = fake.liveness.calls
        code = redirected_params(browser.client.get(resume))["code"]
        claims = verify_id_token(browser, exchange(browser, client, code).get_json()["id_token"], client.client_id)
        assert claims["auth_time"] >= started and "face" in claims["amr"]
        time.sleep(1.1)


def consent_action(page) -> str:  # type: ignore[no-untyped-def]
    return "/oauth2/continue/" + page.get_data(as_text=True).split('action="/oauth2/continue/')[1].split('"')[0]


def ceremony(browser: Browser, username: str, frames: list[bytes], page: str):  # type: ignore[no-untyped-def]
    """A password + face sign-in from ``page`` (the login page, or /reauth for the signed-in user)."""
    browser.refresh_csrf(page)
    nonce = browser.challenge(username)["nonce"]
    return browser.submit("/api/login", nonce, frames, PASSWORD)


# -- key rotation ----------------------------------------------------------------------------------------------------


def test_key_rotation_keeps_old_tokens_verifiable(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    old_token = code_flow(browser, client)["id_token"]
    old_kid = jwt.decode(old_token, KeySet.import_key_set(browser.client.get("/oauth2/jwks").get_json())).header["kid"]
    settings = oidc_app.config["FACEAUTH_SETTINGS"]
    with Session(db_engine) as session:
        new, retired, _deleted = oidc_keys.rotate(session, settings.template_cipher, "ES256", 86400)
        new_kid = new.kid
    assert retired >= 1 and new_kid != old_kid
    kids = [key["kid"] for key in browser.client.get("/oauth2/jwks").get_json()["keys"]]
    assert kids[0] == new_kid and old_kid in kids
    verify_id_token(browser, old_token, client.client_id)  # still verifies
    new_token = code_flow(browser, client)["id_token"]
    assert (
        jwt.decode(new_token, KeySet.import_key_set(browser.client.get("/oauth2/jwks").get_json())).header["kid"]
        == new_kid
    )
    # Once past its window the retired key leaves JWKS (and the next rotation deletes it).
    with Session(db_engine) as session:
        row = session.scalar(select(SigningKey).where(SigningKey.kid == old_kid))
        assert row is not None
        row.retired_at = row.retired_at - __import__("datetime").timedelta(seconds=90000)  # type: ignore[operator]
        session.commit()
    assert old_kid not in [key["kid"] for key in browser.client.get("/oauth2/jwks").get_json()["keys"]]


# -- logout ----------------------------------------------------------------------------------------------------------


def test_logout_ends_the_session_and_redirects_only_to_a_registered_uri(
    oidc_app: Flask, db_engine, user_id: int
) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    # An unregistered post-logout URI: signed out, but no redirect.
    sign_in_as(browser, user_id)
    hint = code_flow(browser, client)["id_token"]
    query = {"id_token_hint": hint, "post_logout_redirect_uri": "https://evil.test/", "state": "s"}
    response = browser.client.get("/oauth2/logout?" + urlencode(query))
    assert response.status_code == 200 and "Location" not in response.headers
    assert browser.signed_in_as() is None
    # The registered one, with the hint: signed out and sent there with the state.
    sign_in_as(browser, user_id)
    hint = code_flow(browser, client)["id_token"]
    query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_REDIRECT, "state": "s"}
    response = browser.client.get("/oauth2/logout?" + urlencode(query))
    assert response.status_code == 302 and response.headers["Location"] == LOGOUT_REDIRECT + "?state=s"
    assert browser.signed_in_as() is None
    # Without a hint the user confirms first (a link alone cannot sign anyone out), and is not redirected.
    sign_in_as(browser, user_id)
    query = {"client_id": client.client_id, "post_logout_redirect_uri": LOGOUT_REDIRECT}
    page = browser.client.get("/oauth2/logout?" + urlencode(query))
    assert page.status_code == 200 and browser.signed_in_as() is not None
    assert browser.client.post("/oauth2/logout", data=query).status_code == 400  # no CSRF token
    browser.refresh_csrf("/account")
    confirmed = browser.client.post("/oauth2/logout", data={**query, "csrf_token": browser.csrf})
    assert confirmed.status_code == 200 and "Location" not in confirmed.headers
    assert browser.signed_in_as() is None
    # A forged hint is refused.
    forged = browser.client.get("/oauth2/logout?" + urlencode({"id_token_hint": "a.b.c"}))
    assert forged.status_code == 400


# -- refresh tokens --------------------------------------------------------------------------------------------------


def refresh(browser: Browser, client: Client, token: str):  # type: ignore[no-untyped-def]
    return browser.client.post(
        "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": token}, headers=basic(client)
    )


def test_refresh_tokens_rotate_and_reuse_revokes_the_family(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True, refresh_tokens=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    tokens = code_flow(browser, client)
    first = tokens["refresh_token"]
    rotated = refresh(browser, client, first)
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    second = rotated.get_json()["refresh_token"]
    second_access = rotated.get_json()["access_token"]
    assert second != first
    assert (
        browser.client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + second_access}).status_code == 200
    )
    # The spent token again: refused, and the whole family with it.
    reused = refresh(browser, client, first)
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    assert refresh(browser, client, second).status_code == 400
    assert (
        browser.client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + second_access}).status_code == 401
    )
    with Session(db_engine) as session:
        rows = session.scalars(select(RefreshToken).where(RefreshToken.user_id == user_id)).all()
        assert rows and all(row.revoked_at is not None for row in rows)
        assert all(first not in row.token_hash for row in rows)  # hashes only


def test_refresh_token_of_another_client_is_refused(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True, refresh_tokens=True)
    other = register(db_engine, first_party=True, refresh_tokens=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    token = code_flow(browser, client)["refresh_token"]
    assert refresh(browser, other, token).status_code == 400


# -- consent ---------------------------------------------------------------------------------------------------------


def test_consent_is_asked_remembered_and_revocable(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine)  # not first-party
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    page = authorize(browser, client.client_id)
    assert page.status_code == 200 and "Allow" in page.get_data(as_text=True)
    # form-action allows the client's origin (the consent answer redirects there), nothing else.
    assert "form-action 'self' https://app.test;" in page.headers["Content-Security-Policy"]
    action = consent_action(page)
    assert browser.client.post(action, data={"decision": "allow"}).status_code == 400  # CSRF token required
    browser.refresh_csrf("/account")
    params = redirected_params(browser.client.post(action, data={"decision": "allow", "csrf_token": browser.csrf}))
    assert params["code"]
    # Remembered: straight to the code.
    assert "code" in redirected_params(authorize(browser, client.client_id))
    # prompt=consent asks again.
    assert authorize(browser, client.client_id, prompt="consent").status_code == 200
    # Revoked on the account page: asked again.
    account = browser.client.get("/account").get_data(as_text=True)
    assert "Test app" in account
    revoke = account.split('action="/account/apps/')[1].split('"')[0]
    response = browser.client.post("/account/apps/" + revoke, data={"csrf_token": browser.csrf})
    assert response.status_code == 302
    assert authorize(browser, client.client_id).status_code == 200


def test_consent_denied_goes_back_with_access_denied(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    page = authorize(browser, client.client_id)
    action = consent_action(page)
    browser.refresh_csrf("/account")
    params = redirected_params(browser.client.post(action, data={"decision": "deny", "csrf_token": browser.csrf}))
    assert params["error"] == "access_denied" and "code" not in params


def test_consent_for_fewer_scopes_does_not_cover_more(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    page = authorize(browser, client.client_id, scope="openid")
    action = consent_action(page)
    browser.refresh_csrf("/account")
    browser.client.post(action, data={"decision": "allow", "csrf_token": browser.csrf})
    assert authorize(browser, client.client_id, scope="openid email").status_code == 200  # asked again


def test_disabled_user_tokens_stop_working(oidc_app: Flask, db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    browser = Browser(oidc_app.test_client())
    sign_in_as(browser, user_id)
    access = code_flow(browser, client)["access_token"]
    with Session(db_engine) as session:
        user = session.get(User, user_id)
        assert user is not None
        user.status = "disabled"
        session.commit()
    assert browser.client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + access}).status_code == 401


def test_token_endpoint_is_rate_limited_per_address(make_app: Callable[..., Flask], db_engine, user_id: int) -> None:  # type: ignore[no-untyped-def]
    app = make_app(oidc_issuer=ISSUER, rate_limit_token_per_address="3/minute")
    client = register(db_engine, first_party=True)
    browser = Browser(app.test_client())
    wrong = Client(client.client_id, "not-the-secret")
    statuses = [exchange(browser, wrong, "no-such-code").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_requests_for_unknown_clients_or_redirect_uris_store_nothing(oidc_app: Flask, db_engine, redis_client) -> None:  # type: ignore[no-untyped-def]
    client = register(db_engine, first_party=True)
    prefix = oidc_app.config["FACEAUTH_SETTINGS"].redis_prefix + "oidc:request:"
    browser = Browser(oidc_app.test_client())
    for client_id, redirect_uri in (("nobody", REDIRECT), (client.client_id, "https://evil.test/cb")):
        response = authorize(browser, client_id, redirect_uri=redirect_uri)
        assert response.status_code == 400 and "Location" not in response.headers
    assert list(redis_client.scan_iter(match=prefix + "*")) == []
    assert authorize(browser, client.client_id).status_code == 302  # a valid one is kept while the user signs in
    assert len(list(redis_client.scan_iter(match=prefix + "*"))) == 1


def test_plain_http_token_and_userinfo_requests_get_an_oauth_error_not_a_500(oidc_app: Flask) -> None:
    """Not through the TLS gateway, to a name that is not loopback (Authlib allows http://localhost): Authlib refuses
    it before its own error handling, which was a 500 (found by the fuzz tier)."""
    client = oidc_app.test_client()
    for path in ("/oauth2/token", "/oauth2/userinfo"):
        response = client.post(path, base_url="http://auth.example.com", data={"grant_type": "authorization_code"})
        assert response.status_code == 400, (path, response.status_code)
        assert response.get_json()["error"] == "insecure_transport"
