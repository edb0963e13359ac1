"""After signing in, only local paths are followed (no open redirect)."""

from __future__ import annotations

import pytest

from auth_web.blueprints.auth import safe_next


@pytest.mark.parametrize(
    "raw",
    [
        "/admin/users",
        "/account",
        "/admin/audit?username=alice&event=login",
        "/enroll#top",
        "/a/b/../c",
        "/https://evil.example",  # a path on this site
    ],
)
def test_local_paths_are_followed(raw: str) -> None:
    assert safe_next(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "admin",  # relative
        "//evil.example/x",  # scheme-relative
        "///evil.example",
        "/\\evil.example",  # a browser reads \ as /
        "\\\\evil.example",
        "https://evil.example",
        "https:evil.example",
        "https:",
        "javascript:alert(1)",
        "data:text/html,x",
        " //evil.example",  # the URL parser strips leading spaces
        "\t//evil.example",
        "/\t/evil.example/phish",  # ?next=/%09/evil.example/phish, as Flask decodes the query
        "/\n/evil.example/phish",  # ?next=/%0a/evil.example/phish
        "/\r/evil.example",
        "/%09/evil.example/phish",  # double-encoded in the query: refused after decoding too
        "/%0a/evil.example/phish",
        "/%0D/evil.example",
        "/%5Cevil.example",  # %5C = backslash
        "/%5cevil.example",
        "/%2F/evil.example",  # decodes to //evil.example
        "/%252F/evil.example",  # twice encoded
        "/%2509/evil.example",
        "/x\x00y",
        "/x\x7fy",
        "/caf\u00e9",  # non-ASCII: url_for never makes it
        "/\u2215\u2215evil.example",  # DIVISION SLASH
        "/" + "a" * 300,  # too long
    ],
)
def test_anything_that_could_leave_the_site_is_dropped(raw: str | None) -> None:
    assert safe_next(raw) is None


def test_reported_open_redirects_through_the_login_page() -> None:
    """Regression (issue 13): /login?next=/%09/evil.example/phish (and %0a) sent Chromium to evil.example."""
    from urllib.parse import parse_qs

    for query in ("next=/%09/evil.example/phish", "next=/%0a/evil.example/phish", "next=/%0A/evil.example"):
        [value] = parse_qs(query)["next"]
        assert safe_next(value) is None, query
