"""Accounts without dead ends: recovery links (single use, expiring, stored hashed) and the users' e-mail address
(for self-service recovery; unique on its case-folded form when set).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:  # batch: SQLite cannot add a unique constraint in place
        batch.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch.add_column(sa.Column("email_key", sa.String(length=254), nullable=True))
        batch.create_unique_constraint(op.f("uq_users_email_key"), ["email_key"])
    op.create_table(
        "recovery_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("issued_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_recovery_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_recovery_links_token_hash")),
    )
    op.create_index(op.f("ix_recovery_links_user_id"), "recovery_links", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_recovery_links_user_id"), table_name="recovery_links")
    op.drop_table("recovery_links")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("uq_users_email_key"), type_="unique")
        batch.drop_column("email_key")
        batch.drop_column("email")
