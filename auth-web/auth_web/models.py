"""Tables: users, their face templates, their passkeys, their recovery links, and the audit log.

Portable on purpose (Postgres in production and tests, SQLite for the local try-it-out mode): embeddings are
stored encrypted (AES-256-GCM, template_crypto.py) as bytes, timestamps are timezone-aware, no Postgres-only
column types.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from auth_web.template_crypto import TemplateCipher

EMBEDDING_DIMENSIONS = 128

# Deterministic constraint names, so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


ROLE_USER = "user"
ROLE_ADMIN = "admin"
STATUS_ACTIVE = "active"
STATUS_DISABLED = "disabled"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # As typed at registration; uniqueness is on the case-folded form.
    username: Mapped[str] = mapped_column(String(32), nullable=False)
    username_key: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    # NULL: the account has no password (imported without one); password+face login is impossible until set.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), nullable=False, default=ROLE_USER)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=STATUS_ACTIVE)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Where self-service recovery links are sent (recovery.py); as typed, unique on the case-folded form.
    email: Mapped[str | None] = mapped_column(String(254))
    email_key: Mapped[str | None] = mapped_column(String(254), unique=True)

    templates: Mapped[list[FaceTemplate]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, order_by="FaceTemplate.id"
    )
    passkeys: Mapped[list[Passkey]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, order_by="Passkey.id"
    )

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    @property
    def is_active(self) -> bool:
        return self.status == STATUS_ACTIVE


class FaceTemplate(Base):
    """One enrolled embedding, encrypted: made by ``seal``, read by ``vector`` (both need the app's cipher,
    ``Settings.template_cipher``). The ciphertext is bound to ``user_id`` and ``model_version``."""

    __tablename__ = "face_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    # AES-256-GCM: nonce || ciphertext of 128 little-endian float32 values || tag (540 bytes).
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # Which key of the ring sealed it (template_crypto.key_id_for); rotation re-seals rows under the current key.
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    model_version: Mapped[str] = mapped_column(String(64), nullable=False)
    quality: Mapped[float] = mapped_column(Float, nullable=False)
    source: Mapped[str] = mapped_column(String(255), nullable=False, default="browser")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    user: Mapped[User] = relationship(back_populates="templates")

    @classmethod
    def seal(
        cls, values: object, *, user_id: int, model_version: str, cipher: TemplateCipher, **fields: object
    ) -> FaceTemplate:
        """A new row holding ``values`` (128 finite numbers) encrypted under the cipher's current key."""
        sealed = cipher.seal(pack_embedding(values), user_id=user_id, model_version=model_version)
        return cls(
            user_id=user_id,
            model_version=model_version,
            embedding=sealed.ciphertext,
            key_id=sealed.key_id,
            **fields,
        )

    def vector(self, cipher: TemplateCipher) -> list[float]:
        """The embedding; raises template_crypto.TemplateDecryptionError when the ring cannot open it."""
        return unpack_embedding(self._plaintext(cipher))

    def reseal(self, cipher: TemplateCipher) -> bool:
        """Re-encrypt under the cipher's current key (key rotation); False when it already is."""
        if self.key_id == cipher.current_key_id:
            return False
        sealed = cipher.seal(self._plaintext(cipher), user_id=self.user_id, model_version=self.model_version)
        self.embedding, self.key_id = sealed.ciphertext, sealed.key_id
        return True

    def _plaintext(self, cipher: TemplateCipher) -> bytes:
        return cipher.open(self.embedding, key_id=self.key_id, user_id=self.user_id, model_version=self.model_version)


def pack_embedding(values: object) -> bytes:
    """128 finite numbers as little-endian float32 bytes (the plaintext that is sealed)."""
    vector = np.asarray(values, dtype="<f4").reshape(-1)
    if vector.shape != (EMBEDDING_DIMENSIONS,) or not np.all(np.isfinite(vector)):
        raise ValueError(f"an embedding must be {EMBEDDING_DIMENSIONS} finite numbers")
    return vector.tobytes()


def unpack_embedding(plaintext: bytes) -> list[float]:
    return np.frombuffer(plaintext, dtype="<f4").astype(float).tolist()


class Passkey(Base):
    """One registered WebAuthn credential (passkeys.py). ``credential_id`` is the authenticator's raw id; the public
    key is the COSE key as the library verified it at registration. ``sign_count`` is the authenticator's counter
    (0 for authenticators that do not count, which is how most synced passkeys behave)."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    # WebAuthn allows credential ids up to 1023 bytes; unique across users, so an id names exactly one account.
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # An unsigned 32-bit counter: BigInteger so that values above 2**31 fit on Postgres.
    sign_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    transports: Mapped[list | None] = mapped_column(JSON)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    backup_eligible: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="passkeys")


RECOVERY_FACE = "face"
RECOVERY_PASSWORD = "password"  # noqa: S105 (a purpose, not a secret)
RECOVERY_BOTH = "both"
RECOVERY_PURPOSES = (RECOVERY_FACE, RECOVERY_PASSWORD, RECOVERY_BOTH)


class RecoveryLink(Base):
    """A single-use link back into an account (recovery.py): only the SHA-256 of its token is stored, it expires,
    and it can do only its ``purpose`` (enroll the face, set the password, or both)."""

    __tablename__ = "recovery_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    # Who issued it: "admin" (the admin page), "cli", "email" (self-service); the admin's id when there is one.
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    issued_by_user_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # A newer link for the same purpose revokes the older unused ones.
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """One security-relevant event. ``user_id`` is deliberately not a foreign key: the row outlives the user."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=text("CURRENT_TIMESTAMP"), index=True
    )
    event: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    result: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    claimed_username: Mapped[str | None] = mapped_column(String(64))
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(128))
    live_score: Mapped[float | None] = mapped_column(Float)
    match_distance: Mapped[float | None] = mapped_column(Float)
    matched_frames: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict | None] = mapped_column(JSON)


# The OpenID Connect provider's and the groups' tables (migration 0006) share this metadata.
from auth_web import oidc_models  # noqa: E402,F401
