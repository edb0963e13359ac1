"""AUTH_OIDC_*, AUTH_FORWARD_AUTH_* and AUTH_SESSION_COOKIE_DOMAIN: read once, malformed values refused."""

from __future__ import annotations

import pytest

from auth_web.config import Settings
from auth_web.oidc import ACR_BASIC, ACR_FACE, ACR_FACE_MFA, acr_for
from faceauth_common.settings import SettingsError

PRODUCTION = {
    "FACEAUTH_ENV": "production",
    "FACEAUTH_SECRET_KEY": "p" * 40,
    "FACEAUTH_TEMPLATE_KEY": "A" * 43,
}


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.oidc_issuer == "" and settings.oidc_signing_alg == "ES256"
    assert (settings.oidc_code_seconds, settings.oidc_access_token_seconds, settings.oidc_id_token_seconds) == (
        60,
        300,
        600,
    )
    assert settings.forward_auth_domains == () and settings.session_cookie_domain == ""


def test_values_are_read() -> None:
    settings = Settings.from_env(
        {
            "AUTH_OIDC_ISSUER": "https://auth.example.com/",
            "AUTH_OIDC_SIGNING_ALG": "RS256",
            "AUTH_FORWARD_AUTH_DOMAINS": ".Example.com, wiki.other.org",
            "AUTH_FORWARD_AUTH_LOGIN_URL": "https://auth.example.com/auth/start",
            "AUTH_SESSION_COOKIE_DOMAIN": ".example.com",
        }
    )
    assert settings.oidc_issuer == "https://auth.example.com"  # no trailing slash: iss is compared exactly
    assert settings.oidc_signing_alg == "RS256"
    assert settings.forward_auth_domains == (".example.com", "wiki.other.org")
    assert settings.session_cookie_domain == ".example.com"


@pytest.mark.parametrize(
    "env",
    [
        {"AUTH_OIDC_ISSUER": "auth.example.com"},
        {"AUTH_OIDC_SIGNING_ALG": "HS256"},
        {"AUTH_OIDC_CODE_SECONDS": "3600"},
        {"AUTH_OIDC_ID_TOKEN_SECONDS": "3600", "AUTH_OIDC_RETIRED_KEY_SECONDS": "600"},
        {"AUTH_FORWARD_AUTH_DOMAINS": "https://example.com"},
        {"AUTH_FORWARD_AUTH_DOMAINS": "example.com:8443"},
        {"AUTH_FORWARD_AUTH_LOGIN_URL": "/auth/start"},
    ],
)
def test_malformed_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_production_wants_an_https_issuer() -> None:
    with pytest.raises(SettingsError, match="https"):
        Settings.from_env({**PRODUCTION, "AUTH_OIDC_ISSUER": "http://auth.example.com"})
    assert Settings.from_env({**PRODUCTION, "AUTH_OIDC_ISSUER": "https://auth.example.com"}).oidc_issuer


@pytest.mark.parametrize(
    ("amr", "acr"),
    [
        (["pwd", "face", "mfa"], ACR_FACE_MFA),
        (["hwk", "face", "mfa"], ACR_FACE_MFA),
        (["face", "swk"], ACR_FACE_MFA),
        (["face"], ACR_FACE),
        (["pwd"], ACR_BASIC),
        ([], ACR_BASIC),
    ],
)
def test_acr_says_whether_a_face_was_verified(amr: list[str], acr: str) -> None:
    assert acr_for(amr) == acr
