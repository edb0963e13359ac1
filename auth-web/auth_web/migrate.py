"""Schema migrations (Alembic, scripts inside this package): ``python -m auth_web migrate``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from auth_web.template_crypto import TemplateCipher


def alembic_config(database_url: str, template_cipher: TemplateCipher | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "auth_web:migrations")
    # ConfigParser interpolation: a literal % in a URL (an escaped password) must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    # The key ring that 0002 seals existing templates with (None: it reads FACEAUTH_TEMPLATE_KEY itself).
    config.attributes["template_cipher"] = template_cipher
    return config


def upgrade(database_url: str, revision: str = "head", template_cipher: TemplateCipher | None = None) -> None:
    """Bring the database to ``revision``; creates the tables and nothing else (no users, no data)."""
    command.upgrade(alembic_config(database_url, template_cipher), revision)


def downgrade(database_url: str, revision: str, template_cipher: TemplateCipher | None = None) -> None:
    command.downgrade(alembic_config(database_url, template_cipher), revision)
