"""The OpenID Connect provider: Authlib's authorization server, wired to faceauth's users, sessions and stores.

- Clients: ``oauth_clients`` (oidc_models.py), wrapped as Authlib's ClientMixin by ``RegisteredClient``.
- Authorization codes: Redis, single-use (GETDEL), ``AUTH_OIDC_CODE_SECONDS``; a code presented twice revokes what
  its first exchange issued (RFC 6749 §4.1.2).
- Access tokens: opaque, in Redis (their SHA-256), ``AUTH_OIDC_ACCESS_TOKEN_SECONDS``.
- Refresh tokens (only clients registered with them): Postgres families, rotated at every use; a used token
  presented again revokes the whole family (and the family's access tokens stop working).
- PKCE: S256 only; required for public clients (already at the authorization request).
- ID tokens: signed with the active key of oidc_keys.py; ``auth_time``, ``amr`` and ``acr`` come from the session's
  last ceremony (auth_helpers.sign_in).

The views (blueprints/oidc.py) own HTTP; this module owns the protocol objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError, OAuth2Payload, OAuth2Request, TokenMixin
from authlib.oauth2.rfc6749 import grants as oauth2_grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode, UserInfo, UserInfoEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import Flask
from flask import request as flask_request
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from auth_web import audit, context, oidc_keys, reasons
from auth_web.accounts import verify_password
from auth_web.auth_helpers import session_amr, session_auth_time, sign_out
from auth_web.db import db
from auth_web.groups import group_names
from auth_web.models import User, utcnow
from auth_web.oidc_models import OAuthClient, OidcSubject, RefreshToken

log = logging.getLogger(__name__)

SCOPES = ("openid", "profile", "email", "groups")
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

#: ``acr`` values (documented in docs/oidc.md): what the ceremony behind the session proved.
ACR_FACE_MFA = "urn:faceauth:acr:face+mfa"  # a live face matched AND a second factor (password or passkey)
ACR_FACE = "urn:faceauth:acr:face"  # a live face matched, alone
ACR_BASIC = "urn:faceauth:acr:basic"  # no face (e.g. password only, right after registration)
ACR_VALUES = (ACR_FACE_MFA, ACR_FACE, ACR_BASIC)


def acr_for(amr: list[str]) -> str:
    if "face" not in amr:
        return ACR_BASIC
    second_factor = "mfa" in amr or bool(set(amr) - {"face", "mfa"})
    return ACR_FACE_MFA if second_factor else ACR_FACE


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def issuer() -> str:
    """AUTH_OIDC_ISSUER, or (development) the root URL this request came to."""
    configured = context.settings().oidc_issuer
    return configured or flask_request.url_root.rstrip("/")


def _key(name: str) -> str:
    return f"{context.settings().redis_prefix}oidc:{name}"


# -- clients ----------------------------------------------------------------------------------------------


class RegisteredClient(ClientMixin):
    """An ``oauth_clients`` row as Authlib sees it."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.client_id = row.client_id

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.row.post_logout_redirect_uris or [])}

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        # No default: a request without redirect_uri is refused (every client must name one of its own).
        return None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.row.scopes.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string match only: no prefixes, no wildcards, no normalisation.
        return redirect_uri in (self.row.redirect_uris or [])

    def check_client_secret(self, client_secret: str) -> bool:
        return self.row.secret_hash is not None and verify_password(self.row.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method == self.row.token_endpoint_auth_method
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "refresh_token":
            return bool(self.row.refresh_tokens)
        return grant_type == "authorization_code"


def query_client(client_id: str) -> RegisteredClient | None:
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    row = db().scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    return RegisteredClient(row) if row is not None else None


# -- subjects and claims ----------------------------------------------------------------------------------


def subject_for(user: User) -> str:
    """The user's stable random ``sub`` (made and committed on first use)."""
    session = db()
    row = session.get(OidcSubject, user.id)
    if row is None:
        row = OidcSubject(user_id=user.id, subject=secrets.token_urlsafe(24))
        session.add(row)
        session.commit()
    return row.subject


def user_claims(user: User, scope: str) -> UserInfo:
    scopes = set((scope or "").split())
    claims: dict[str, Any] = {"sub": subject_for(user)}
    if "profile" in scopes:
        claims["preferred_username"] = user.username
        claims["name"] = getattr(user, "display_name", None) or user.username
    email = getattr(user, "email", None)  # users.email (migration 0005) when the account has one
    if "email" in scopes and email:
        claims["email"] = email
        verified = getattr(user, "email_verified", None)
        if verified is not None:
            claims["email_verified"] = bool(verified)
    if "groups" in scopes:
        claims["groups"] = group_names(db(), user)
    return UserInfo(claims)


def _active_user(user_id: int) -> User | None:
    user = db().get(User, user_id)
    return user if user is not None and user.is_active else None


# -- authorization codes (Redis) ----------------------------------------------------------------------------


@dataclass
class IssuedCode(AuthorizationCodeMixin):
    client_id: str
    redirect_uri: str
    scope: str
    user_id: int
    nonce: str | None
    auth_time: int
    amr: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    code_hash: str = ""

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_amr(self) -> list[str]:
        return list(self.amr)

    def get_acr(self) -> str:
        return acr_for(self.amr)


class PkceS256(CodeChallenge):
    """PKCE with S256 only; a public client that sends no challenge is refused at the authorization request
    already (Authlib alone would refuse it only at the token endpoint)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        client: RegisteredClient = grant.request.client
        if client.row.public and not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")


class AuthorizationCodeGrant(oauth2_grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)

    def save_authorization_code(self, code: str, oauth_request: OAuth2Request) -> None:
        settings = context.settings()
        data = oauth_request.payload.data
        nonce = data.get("nonce")
        issued = {
            "client_id": oauth_request.client.get_client_id(),
            "redirect_uri": oauth_request.payload.redirect_uri,
            "scope": oauth_request.scope,
            "user_id": oauth_request.user.id,
            "nonce": nonce,
            "auth_time": session_auth_time() or int(time.time()),
            "amr": session_amr(),
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
        }
        client = context.redis()
        pipe = client.pipeline()
        pipe.set(_key("code:" + token_hash(code)), json.dumps(issued), ex=settings.oidc_code_seconds)
        if nonce:
            # A nonce is used once per client (exists_nonce refuses it afterwards: a replayed request).
            ttl = settings.oidc_request_seconds + settings.oidc_id_token_seconds
            pipe.set(_key(f"nonce:{issued['client_id']}:{token_hash(nonce)}"), "1", ex=ttl)
        pipe.execute()

    def query_authorization_code(self, code: str, client: RegisteredClient) -> IssuedCode | None:
        if not isinstance(code, str) or len(code) > 256:
            return None
        hashed = token_hash(code)
        raw = context.redis().getdel(_key("code:" + hashed))
        if raw is None:
            _revoke_for_reused_code(hashed)
            return None
        issued = IssuedCode(**json.loads(raw), code_hash=hashed)
        # Taken out whatever happens next: a code is spent by its first exchange, right or wrong.
        settings = context.settings()
        context.redis().set(_key("used_code:" + hashed), json.dumps({}), ex=settings.oidc_refresh_token_seconds)
        if issued.client_id != client.get_client_id():
            return None
        return issued

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Nothing left to delete: query_authorization_code took the code out atomically."""

    def authenticate_user(self, authorization_code: IssuedCode) -> User | None:
        return _active_user(authorization_code.user_id)


def _revoke_for_reused_code(hashed: str) -> None:
    """A spent code presented again: what its exchange issued is revoked (its access token, its refresh family)."""
    raw = context.redis().get(_key("used_code:" + hashed))
    if raw is None:
        return
    issued = json.loads(raw)
    if issued.get("access"):
        context.redis().delete(_key("at:" + issued["access"]))
    if issued.get("family"):
        revoke_family(issued["family"], reasons.OIDC_CODE_REUSE)
    else:
        audit.record(reasons.OIDC_TOKEN, reasons.FAILURE, reasons.OIDC_CODE_REUSE)


# -- refresh tokens (Postgres families) ----------------------------------------------------------------------


class StoredRefreshToken(TokenMixin):
    def __init__(self, row: RefreshToken) -> None:
        self.row = row

    def check_client(self, client: RegisteredClient) -> bool:
        return self.row.client_pk == client.row.id

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return oidc_keys._aware(self.row.expires_at) <= utcnow()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None


def revoke_family(family_id: str, reason: str) -> int:
    """Revoke every refresh token of the family; their access tokens stop working too (BearerValidator)."""
    session = db()
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()
    row = session.scalar(select(RefreshToken).where(RefreshToken.family_id == family_id).limit(1))
    audit.record(
        reasons.OIDC_TOKEN,
        reasons.FAILURE,
        reason,
        user_id=row.user_id if row is not None else None,
        details={"family": family_id[:12], "revoked": result.rowcount},  # type: ignore[attr-defined]
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


class RefreshTokenGrant(oauth2_grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefreshToken | None:
        if not isinstance(refresh_token, str) or len(refresh_token) > 256:
            return None
        session = db()
        row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash(refresh_token)))
        if row is None or row.revoked_at is not None:
            return None
        # Spend it atomically: of two concurrent uses only one updates the row; the other is a reuse.
        spent = session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
            .values(used_at=utcnow())
        )
        session.commit()
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            revoke_family(row.family_id, reasons.OIDC_REFRESH_REUSE)
            return None
        session.refresh(row)
        token = StoredRefreshToken(row)
        if token.is_expired():
            return None
        return token

    def authenticate_user(self, refresh_token: StoredRefreshToken) -> User | None:
        return _active_user(refresh_token.row.user_id)

    def revoke_old_credential(self, refresh_token: StoredRefreshToken) -> None:
        """Already spent by authenticate_refresh_token (used_at); it is refused from now on."""


def save_token(token: dict[str, Any], oauth_request: OAuth2Request) -> None:
    """Store a new access token (Redis) and, when issued, its refresh token (Postgres, in the right family)."""
    settings = context.settings()
    client: RegisteredClient = oauth_request.client
    user: User = oauth_request.user
    family_id: str | None = None
    auth_time, amr = int(time.time()), []
    code: IssuedCode | None = oauth_request.authorization_code
    previous: StoredRefreshToken | None = oauth_request.refresh_token
    if code is not None:
        auth_time, amr = code.auth_time, code.amr
    elif previous is not None:
        auth_time, amr = previous.row.auth_time, list(previous.row.amr)
        family_id = previous.row.family_id
    if token.get("refresh_token"):
        family_id = family_id or secrets.token_urlsafe(24)
        db().add(
            RefreshToken(
                token_hash=token_hash(token["refresh_token"]),
                family_id=family_id,
                client_pk=client.row.id,
                user_id=user.id,
                scope=token.get("scope", ""),
                auth_time=auth_time,
                amr=amr,
                expires_at=utcnow() + _seconds(settings.oidc_refresh_token_seconds),
            )
        )
        db().commit()
    access = token_hash(token["access_token"])
    stored = {
        "client_id": client.get_client_id(),
        "user_id": user.id,
        "scope": token.get("scope", ""),
        "family": family_id,
        "expires_at": int(time.time()) + int(token["expires_in"]),
    }
    redis_client = context.redis()
    redis_client.set(_key("at:" + access), json.dumps(stored), ex=int(token["expires_in"]))
    if code is not None:
        redis_client.set(
            _key("used_code:" + code.code_hash),
            json.dumps({"access": access, "family": family_id}),
            ex=settings.oidc_refresh_token_seconds,
        )
    audit.record(
        reasons.OIDC_TOKEN,
        reasons.SUCCESS,
        reasons.OK,
        user_id=user.id,
        claimed_username=user.username,
        details={"client": client.get_client_id(), "grant": oauth_request.payload.grant_type},
    )


def _seconds(value: int):  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.timedelta(seconds=value)


# -- access tokens ----------------------------------------------------------------------------------------------


class AccessToken(TokenMixin):
    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self.scope = stored["scope"]

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, self.stored["expires_at"] - int(time.time()))

    def is_expired(self) -> bool:
        return self.stored["expires_at"] <= time.time()

    def is_revoked(self) -> bool:
        family = self.stored.get("family")
        if not family:
            return False
        revoked = db().scalar(
            select(RefreshToken.id).where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_not(None))
        )
        return revoked is not None

    def get_user(self) -> User | None:
        return _active_user(self.stored["user_id"])

    def get_client(self) -> RegisteredClient | None:
        return query_client(self.stored["client_id"])


class BearerValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> AccessToken | None:
        if not token_string or len(token_string) > 256:
            return None
        raw = context.redis().get(_key("at:" + token_hash(token_string)))
        if raw is None:
            return None
        token = AccessToken(json.loads(raw))
        if token.get_user() is None:  # disabled or deleted since
            return None
        return token


# -- OpenID Connect extensions ------------------------------------------------------------------------------------


class FaceauthOpenIDCode(OpenIDCode):
    def exists_nonce(self, nonce: str, oauth_request: OAuth2Request) -> bool:
        client_id = oauth_request.payload.client_id
        return bool(context.redis().exists(_key(f"nonce:{client_id}:{token_hash(nonce)}")))

    def _signing_row(self):  # type: ignore[no-untyped-def]
        settings = context.settings()
        return oidc_keys.ensure_active_key(db(), settings.template_cipher, settings.oidc_signing_alg)

    def resolve_client_private_key(self, client: RegisteredClient):  # type: ignore[no-untyped-def]
        return oidc_keys.private_key(self._signing_row(), context.settings().template_cipher)

    def get_client_algorithm(self, client: RegisteredClient) -> str:
        return self._signing_row().alg

    def get_encode_header(self, client: RegisteredClient) -> dict[str, str]:
        row = self._signing_row()
        return {"alg": row.alg, "kid": row.kid, "typ": "JWT"}

    def get_client_claims(self, client: RegisteredClient) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": issuer(),
            "aud": client.get_client_id(),
            "iat": now,
            "exp": now + context.settings().oidc_id_token_seconds,
        }

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_claims(user, scope)


class FaceauthUserInfo(UserInfoEndpoint):
    def get_issuer(self) -> str:
        return issuer()

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        if user is None:
            raise InvalidRequestError("the token's user is gone")
        return user_claims(user, scope)

    def resolve_private_key(self):  # type: ignore[no-untyped-def]
        settings = context.settings()
        row = oidc_keys.ensure_active_key(db(), settings.template_cipher, settings.oidc_signing_alg)
        return oidc_keys.private_key(row, settings.template_cipher)


class FaceauthEndSession(EndSessionEndpoint):
    def get_server_jwks(self):  # type: ignore[no-untyped-def]
        return oidc_keys.key_set(db(), context.settings().oidc_retired_key_seconds)

    def end_session(self, end_session_request: Any) -> None:
        from flask import g

        user = g.get("user")
        if user is not None:
            client = end_session_request.client
            audit.record(
                reasons.LOGOUT,
                reasons.SUCCESS,
                reasons.OK,
                user_id=user.id,
                claimed_username=user.username,
                details={"client": client.get_client_id() if client is not None else None},
            )
            sign_out()


# -- stored authorization requests ----------------------------------------------------------------------------------


class StoredPayload(OAuth2Payload):
    def __init__(self, values: MultiDict) -> None:
        self._values = values

    @property
    def data(self) -> MultiDict:
        return self._values

    @cached_property
    def datalist(self) -> defaultdict[str, list]:
        values: defaultdict[str, list] = defaultdict(list)
        for key in self._values:
            values[key].extend(self._values.getlist(key))
        return values


class StoredAuthorizationRequest(OAuth2Request):
    """An authorization request kept server-side (Redis) while the user signs in, re-authenticates or consents."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(method="GET", uri=flask_request.url, headers=flask_request.headers)
        self._values = MultiDict(pairs)
        self.payload = StoredPayload(self._values)

    @property
    def args(self) -> MultiDict:
        return self._values

    @property
    def form(self) -> MultiDict:
        return MultiDict()


class FaceauthServer(AuthorizationServer):
    def create_oauth2_request(self, oauth_request: Any) -> OAuth2Request:
        if isinstance(oauth_request, OAuth2Request):
            return oauth_request
        return FlaskOAuth2Request(flask_request)


_SERVER = "faceauth_oidc_server"
_PROTECTOR = "faceauth_oidc_protector"


def init_app(app: Flask) -> None:
    settings = app.config["FACEAUTH_SETTINGS"]
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {
        "authorization_code": settings.oidc_access_token_seconds,
        "refresh_token": settings.oidc_access_token_seconds,
    }
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    app.config["OAUTH2_SCOPES_SUPPORTED"] = list(SCOPES)
    server = FaceauthServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(AuthorizationCodeGrant, [FaceauthOpenIDCode(require_nonce=False), PkceS256(required=True)])
    server.register_grant(RefreshTokenGrant)
    protector = ResourceProtector()
    protector.register_token_validator(BearerValidator())
    server.register_endpoint(FaceauthUserInfo(resource_protector=protector))
    server.register_endpoint(FaceauthEndSession)
    app.extensions[_SERVER] = server
    app.extensions[_PROTECTOR] = protector


def server() -> FaceauthServer:
    from flask import current_app

    return current_app.extensions[_SERVER]  # type: ignore[no-any-return]
