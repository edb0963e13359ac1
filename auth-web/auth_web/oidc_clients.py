"""The client registry: create, list, delete, rotate a secret (the CLI and the admin page share these).

A confidential client's secret is 32 random bytes (URL-safe base64), shown once and stored as an argon2 hash.
Redirect URIs are matched exactly; they must be absolute http(s) URLs without a fragment (``http`` only for
loopback hosts, RFC 8252 §7.3, unless ``allow_http``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from auth_web.accounts import hash_password
from auth_web.oidc import AUTH_METHODS, SCOPES
from auth_web.oidc_models import OAuthClient

CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
DEFAULT_SCOPES = "openid profile email groups"
MIN_SECRET_LENGTH = 32
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


class ClientError(ValueError):
    pass


@dataclass(frozen=True)
class CreatedClient:
    client: OAuthClient
    secret: str | None  # shown once; None for a public client


def validate_uri(raw: str, *, allow_http: bool = False) -> str:
    uri = raw.strip()
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise ClientError(_("not a URL: %(uri)s", uri=repr(raw))) from None
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment or "@" in parts.netloc:
        raise ClientError(
            _("a redirect URI must be an absolute http(s) URL without a fragment: %(uri)s", uri=repr(raw))
        )
    if parts.scheme == "http" and not allow_http and parts.hostname not in _LOOPBACK_HOSTS:
        raise ClientError(_("http:// only for loopback hosts (use https, or --allow-http): %(uri)s", uri=repr(raw)))
    if any(char in uri for char in " \t\r\n\"'<>\\"):
        raise ClientError(_("a redirect URI must not contain spaces, quotes or angle brackets: %(uri)s", uri=repr(raw)))
    return uri


def validate_scopes(raw: str) -> str:
    scopes = sorted(set(raw.split()), key=SCOPES.index) if all(s in SCOPES for s in raw.split()) else None
    if not scopes or "openid" not in scopes:
        raise ClientError(
            _("scopes must include 'openid' and be among %(scopes)s, got %(raw)s", scopes=list(SCOPES), raw=repr(raw))
        )
    return " ".join(scopes)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def create_client(
    session: Session,
    *,
    name: str,
    redirect_uris: Iterable[str],
    post_logout_redirect_uris: Iterable[str] = (),
    client_id: str | None = None,
    auth_method: str = "client_secret_basic",
    scopes: str = DEFAULT_SCOPES,
    first_party: bool = False,
    refresh_tokens: bool = False,
    allow_http: bool = False,
    secret: str | None = None,
) -> CreatedClient:
    """A new client (not committed); ``auth_method`` "none" makes a public client (PKCE S256 required).

    ``secret``: the operator's own (at least 32 characters, e.g. from a deployment's secret store); default random.
    """
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ClientError(_("a client needs a name of 1-100 characters"))
    if auth_method not in AUTH_METHODS:
        raise ClientError(_("the token endpoint auth method must be one of %(methods)s", methods=list(AUTH_METHODS)))
    client_id = client_id or secrets.token_urlsafe(16)
    if not CLIENT_ID.fullmatch(client_id):
        raise ClientError(_("a client id is 3-64 letters, digits, '.', '_' or '-'"))
    if session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id)) is not None:
        raise ClientError(_("client %(client)s exists", client=repr(client_id)))
    uris = [validate_uri(uri, allow_http=allow_http) for uri in redirect_uris if uri.strip()]
    if not uris:
        raise ClientError(_("a client needs at least one redirect URI"))
    logout_uris = [validate_uri(uri, allow_http=allow_http) for uri in post_logout_redirect_uris if uri.strip()]
    if auth_method == "none":
        if secret:
            raise ClientError(_("a public client has no secret"))
    elif secret is not None:
        if len(secret) < MIN_SECRET_LENGTH or not secret.isascii() or not secret.isprintable():
            raise ClientError(
                _("a client secret must be at least %(count)s printable ASCII characters", count=MIN_SECRET_LENGTH)
            )
    else:
        secret = new_secret()
    row = OAuthClient(
        client_id=client_id,
        name=name,
        secret_hash=hash_password(secret) if secret else None,
        token_endpoint_auth_method=auth_method,
        redirect_uris=uris,
        post_logout_redirect_uris=logout_uris,
        scopes=validate_scopes(scopes),
        first_party=first_party,
        refresh_tokens=refresh_tokens,
    )
    session.add(row)
    session.flush()
    return CreatedClient(row, secret)


def find_client(session: Session, client_id: str) -> OAuthClient | None:
    return session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def list_clients(session: Session) -> list[OAuthClient]:
    return list(session.scalars(select(OAuthClient).order_by(OAuthClient.client_id)))


def rotate_secret(session: Session, client: OAuthClient) -> str:
    """A new secret (the old one stops working at once); not committed."""
    if client.public:
        raise ClientError(_("%(client)s is a public client: it has no secret", client=repr(client.client_id)))
    secret = new_secret()
    client.secret_hash = hash_password(secret)
    return secret


def describe(client: OAuthClient) -> str:
    kind = "public (PKCE)" if client.public else f"confidential ({client.token_endpoint_auth_method})"
    flags = [f for f, on in (("first-party", client.first_party), ("refresh tokens", client.refresh_tokens)) if on]
    return f"{client.client_id}\t{client.name}\t{kind}\t{client.scopes}\t{' '.join(client.redirect_uris)}" + (
        f"\t{', '.join(flags)}" if flags else ""
    )
