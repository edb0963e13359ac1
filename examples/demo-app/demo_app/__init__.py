"""A tiny relying party of faceauth: Flask + Authlib's OpenID Connect client (see README.md)."""

from demo_app.app import DemoSettings, create_app

__all__ = ["DemoSettings", "create_app"]
