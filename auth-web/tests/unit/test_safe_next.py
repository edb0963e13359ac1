"""After signing in, only local paths are followed (no open redirect)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/admin/users", "/admin/users"),
        ("//evil.example/x", None),
        ("https://evil.example", None),
        ("/\\evil.example", None),
        (None, None),
        ("", None),
    ],
)
def test_only_local_next_urls_are_followed(raw: str | None, expected: str | None) -> None:
    from auth_web.blueprints.auth import safe_next

    assert safe_next(raw) == expected
