"""Face templates encrypted at rest: a key id per row, existing plaintext rows sealed (AES-256-GCM).

The key comes from the caller (``python -m auth_web migrate`` passes the settings' key ring) or, when Alembic is
run some other way, from FACEAUTH_TEMPLATE_KEY / FACEAUTH_TEMPLATE_OLD_KEYS. Existing rows are never sealed with
the public development key: with rows to convert and no key set, the upgrade stops and says so (nothing changes,
the whole migration is one transaction). The downgrade decrypts every row back to plaintext.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from auth_web.template_crypto import KEY_ENV, TemplateCipher, TemplateDecryptionError, cipher_from_env

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH_ROWS = 500
PLAINTEXT_BYTES = 128 * 4

# The table as this revision sees it (not the ORM model, which moves on with later revisions).
templates = sa.table(
    "face_templates",
    sa.column("id", sa.Integer),
    sa.column("user_id", sa.Integer),
    sa.column("embedding", sa.LargeBinary),
    sa.column("key_id", sa.String),
    sa.column("model_version", sa.String),
)


def _cipher() -> TemplateCipher:
    cipher = context.config.attributes.get("template_cipher")
    return cipher if cipher is not None else cipher_from_env()


def _rows(connection: sa.Connection, after_id: int) -> list[sa.Row]:
    statement = (
        sa.select(
            templates.c.id, templates.c.user_id, templates.c.embedding, templates.c.key_id, templates.c.model_version
        )
        .where(templates.c.id > after_id)
        .order_by(templates.c.id)
        .limit(BATCH_ROWS)
    )
    return list(connection.execute(statement))


def upgrade() -> None:
    connection = op.get_bind()
    pending = connection.scalar(sa.select(sa.func.count()).select_from(templates)) or 0
    cipher = _cipher() if pending else None
    # Checked before any change: SQLite does not roll DDL back.
    if cipher is not None and cipher.is_development_key:
        raise RuntimeError(
            f"face_templates holds {pending} plaintext templates to encrypt, but {KEY_ENV} is not set: set it "
            "(python -m auth_web generate-template-key) and run the migration again; nothing was changed"
        )
    with op.batch_alter_table("face_templates") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
    last_id = 0
    while cipher is not None and (rows := _rows(connection, last_id)):
        for row in rows:
            if len(row.embedding) != PLAINTEXT_BYTES:
                raise RuntimeError(f"face_templates row {row.id} is not a 128-value float32 embedding")
            sealed = cipher.seal(row.embedding, user_id=row.user_id, model_version=row.model_version)
            connection.execute(
                templates.update()
                .where(templates.c.id == row.id)
                .values(embedding=sealed.ciphertext, key_id=sealed.key_id)
            )
        last_id = rows[-1].id
    with op.batch_alter_table("face_templates") as batch:
        batch.alter_column("key_id", existing_type=sa.String(length=32), nullable=False)


def downgrade() -> None:
    connection = op.get_bind()
    cipher = _cipher() if connection.scalar(sa.select(sa.func.count()).select_from(templates)) else None
    # Two passes: every row must open before the first one is written back (SQLite does not roll DDL back).
    for write in (False, True):
        last_id = 0
        while cipher is not None and (rows := _rows(connection, last_id)):
            for row in rows:
                plaintext = _open(cipher, row)
                if write:
                    connection.execute(templates.update().where(templates.c.id == row.id).values(embedding=plaintext))
            last_id = rows[-1].id
    with op.batch_alter_table("face_templates") as batch:
        batch.drop_column("key_id")


def _open(cipher: TemplateCipher, row: sa.Row) -> bytes:
    try:
        return cipher.open(row.embedding, key_id=row.key_id, user_id=row.user_id, model_version=row.model_version)
    except TemplateDecryptionError as error:
        raise RuntimeError(
            f"face_templates row {row.id} cannot be decrypted ({error.reason}, key id {row.key_id}): set "
            f"{KEY_ENV} (and FACEAUTH_TEMPLATE_OLD_KEYS) to the keys that sealed the rows; nothing was changed"
        ) from None
