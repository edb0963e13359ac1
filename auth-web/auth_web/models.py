"""Tables: users, their face templates, and the audit log.

Portable on purpose (Postgres in production and tests, SQLite for the local try-it-out mode): embeddings are
float32 bytes, timestamps are timezone-aware, no Postgres-only column types.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
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
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lockout_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    templates: Mapped[list[FaceTemplate]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, order_by="FaceTemplate.id"
    )

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    @property
    def is_active(self) -> bool:
        return self.status == STATUS_ACTIVE


class FaceTemplate(Base):
    __tablename__ = "face_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    # 128 little-endian float32 values.
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    model_version: Mapped[str] = mapped_column(String(64), nullable=False)
    quality: Mapped[float] = mapped_column(Float, nullable=False)
    source: Mapped[str] = mapped_column(String(255), nullable=False, default="browser")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    user: Mapped[User] = relationship(back_populates="templates")

    @staticmethod
    def pack(values: object) -> bytes:
        vector = np.asarray(values, dtype="<f4").reshape(-1)
        if vector.shape != (EMBEDDING_DIMENSIONS,) or not np.all(np.isfinite(vector)):
            raise ValueError(f"an embedding must be {EMBEDDING_DIMENSIONS} finite numbers")
        return vector.tobytes()

    def vector(self) -> list[float]:
        return np.frombuffer(self.embedding, dtype="<f4").astype(float).tolist()


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
