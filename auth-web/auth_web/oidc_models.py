"""Tables of the OpenID Connect provider and of groups (migration 0006).

Authorization codes, access tokens and pending authorization requests live in Redis (short-lived, single-use);
what must outlive a restart is here: registered clients (secrets hashed), the ID-token signing keys (private
halves sealed with the template cipher), consents, refresh-token families, each user's stable subject, groups.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from auth_web.models import Base, User, utcnow


class OAuthClient(Base):
    """A relying party. Public (no secret: PKCE S256 required) or confidential (secret stored as an argon2 hash)."""

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # NULL: a public client (token_endpoint_auth_method "none").
    secret_hash: Mapped[str | None] = mapped_column(String(255))
    # "none", "client_secret_basic" or "client_secret_post".
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32), nullable=False)
    redirect_uris: Mapped[list] = mapped_column(JSON, nullable=False)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, nullable=False)
    # Space-separated scopes the client may ask for.
    scopes: Mapped[str] = mapped_column(String(255), nullable=False)
    # First-party clients skip the consent screen.
    first_party: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Whether the code exchange also returns a refresh token (rotated at every use).
    refresh_tokens: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 (an auth method name)


class SigningKey(Base):
    """An ID-token signing key. ``private_sealed`` is the private JWK (JSON) sealed with the template cipher
    (``key_id`` names the cipher key); ``public_jwk`` is published in JWKS while the key is active or retired."""

    __tablename__ = "oidc_signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    alg: Mapped[str] = mapped_column(String(16), nullable=False)
    public_jwk: Mapped[dict] = mapped_column(JSON, nullable=False)
    private_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    # Set by rotation: no longer signs, still verifies until ``retired_at`` + AUTH_OIDC_RETIRED_KEY_SECONDS.
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class OAuthConsent(Base):
    """A user's remembered "allow" for a client and a set of scopes (revocable on the account page)."""

    __tablename__ = "oauth_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_pk", name="uq_oauth_consents_user_client"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False)
    scopes: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    client: Mapped[OAuthClient] = relationship()


class RefreshToken(Base):
    """One refresh token (its SHA-256 only). Every use rotates it: the row is marked used and a new row of the same
    ``family_id`` is issued. A used token presented again means it leaked: the whole family is revoked."""

    __tablename__ = "oauth_refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    family_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    scope: Mapped[str] = mapped_column(String(255), nullable=False)
    # How and when the user authenticated for the grant this family comes from (for the refreshed ID tokens).
    auth_time: Mapped[int] = mapped_column(Integer, nullable=False)
    amr: Mapped[list] = mapped_column(JSON, nullable=False)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    client: Mapped[OAuthClient] = relationship()


class OidcSubject(Base):
    """The stable, random ``sub`` of a user (not the username, not the row id): made on the first ID token."""

    __tablename__ = "oidc_subjects"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)


class Group(Base):
    """A user-defined group (the ``admin`` role is the users.role column and is added to the groups claim)."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class UserGroup(Base):
    __tablename__ = "user_groups"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True)

    group: Mapped[Group] = relationship()
    user: Mapped[User] = relationship()
