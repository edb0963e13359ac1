"""faceauth's web tier: accounts, enrollment, face login, admin."""

from auth_web.app import create_app
from auth_web.config import Settings

__all__ = ["Settings", "create_app"]
