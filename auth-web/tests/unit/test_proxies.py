"""Forwarded headers count only from a trusted proxy's address; /readyz details only for internal callers."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from auth_web.config import Settings
from auth_web.proxies import (
    PEER_ADDRESS_ENVIRON_KEY,
    TRUSTED_PROXY_ENVIRON_KEY,
    AddressMatcher,
    TrustedProxyFix,
    parse_address_list,
)
from faceauth_common.settings import SettingsError

FORGED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}


def _echo(environ: dict[str, Any], start_response: Any) -> Any:
    request = Request(environ)
    body = "|".join(
        [
            request.remote_addr or "",
            request.scheme,
            request.host,
            str(environ[TRUSTED_PROXY_ENVIRON_KEY]),
            environ[PEER_ADDRESS_ENVIRON_KEY],
        ]
    )
    return Response(body)(environ, start_response)


def _seen(peer: str, trusted: AddressMatcher, headers: dict[str, str]) -> list[str]:
    client = Client(TrustedProxyFix(_echo, trusted, hops=1))
    response = client.get("/", headers=headers, environ_overrides={"REMOTE_ADDR": peer})
    return response.get_data(as_text=True).split("|")


def test_a_direct_clients_forwarded_headers_are_ignored() -> None:
    """Regression (issue 13): ProxyFix trusted X-Forwarded-For from any peer, so rate limits were bypassed."""
    assert _seen("198.51.100.7", AddressMatcher(["127.0.0.1"]), FORGED) == [
        "198.51.100.7",
        "http",
        "localhost",
        "False",
        "198.51.100.7",
    ]


def test_the_trusted_proxys_forwarded_headers_are_applied() -> None:
    assert _seen("127.0.0.1", AddressMatcher(["127.0.0.1"]), FORGED) == [
        "203.0.113.9",
        "https",
        "evil.example",
        "True",
        "127.0.0.1",
    ]


def test_only_the_last_hop_counts_behind_one_proxy() -> None:
    # nginx appends the real peer to whatever the client sent: the client's own entry is ignored.
    seen = _seen("127.0.0.1", AddressMatcher(["127.0.0.1"]), {"X-Forwarded-For": "10.9.9.9, 192.0.2.1"})
    assert seen[0] == "192.0.2.1"


def test_networks_host_names_and_mapped_addresses() -> None:
    resolved = {"gateway": ["172.18.0.5"]}
    matcher = AddressMatcher(["10.0.0.0/8", "::1", "gateway"], resolve=lambda host: resolved.get(host, []))
    assert "10.1.2.3" in matcher
    assert "::1" in matcher
    assert "::ffff:10.0.0.1" in matcher  # IPv4-mapped IPv6 (dual-stack sockets)
    assert "172.18.0.5" in matcher  # the compose service's current address
    assert "172.18.0.6" not in matcher
    assert "" not in matcher and "not-an-ip" not in matcher and None not in matcher
    assert matcher.literal() == ["10.0.0.0/8", "::1/128"]


def test_host_names_are_resolved_again_after_a_while() -> None:
    now = [0.0]
    answers = iter([["172.18.0.5"], ["172.18.0.9"]])
    matcher = AddressMatcher(["gateway"], resolve=lambda _host: next(answers), clock=lambda: now[0])
    assert "172.18.0.5" in matcher
    now[0] = 25.0
    assert "172.18.0.9" not in matcher  # cached for 30 s
    now[0] = 31.0
    assert "172.18.0.9" in matcher
    assert "172.18.0.5" not in matcher  # the old container's address no longer trusted


def test_a_name_that_does_not_resolve_yet_is_asked_again_within_a_second() -> None:
    now = [0.0]
    asked: list[float] = []
    answers = iter([[], [], ["172.18.0.9"]])

    def resolve(_host: str) -> list[str]:
        asked.append(now[0])
        return next(answers)

    matcher = AddressMatcher(["gateway"], resolve=resolve, clock=lambda: now[0])
    assert "172.18.0.9" not in matcher  # the gateway's container does not exist yet: matches nothing
    now[0] = 0.5
    assert "172.18.0.9" not in matcher  # not asked again within the second (no lookup per request)
    now[0] = 1.2
    assert "172.18.0.9" not in matcher
    now[0] = 2.4
    assert "172.18.0.9" in matcher  # trusted ~2 s after it exists, not 30
    assert asked == [0.0, 1.2, 2.4]


@pytest.mark.parametrize("bad", ["300.1.1.1/8x", "-gateway", "a b", "1.2.3"])
def test_malformed_entries_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        parse_address_list([bad])


def test_settings_read_and_check_the_lists() -> None:
    settings = Settings.from_env({"AUTH_TRUSTED_PROXIES": "gateway, 10.0.0.0/24", "AUTH_INTERNAL_ADDRESSES": "::1"})
    assert settings.trusted_proxies == ("gateway", "10.0.0.0/24")
    assert settings.internal_addresses == ("::1",)
    assert Settings.from_env({}).trusted_proxies == ("127.0.0.1", "::1")
    with pytest.raises(SettingsError, match="AUTH_TRUSTED_PROXIES"):
        Settings.from_env({"AUTH_TRUSTED_PROXIES": "a b"})


def test_gunicorn_trusts_forwarded_headers_only_from_the_trusted_proxies() -> None:
    """Regression (issue 13): serve.py set forwarded_allow_ips "*" whenever a proxy count was set."""
    from auth_web.serve import forwarded_allow_ips

    assert forwarded_allow_ips(Settings()) == ""
    assert forwarded_allow_ips(Settings(proxy_count=1)) == "127.0.0.1/32,::1/128"
    assert forwarded_allow_ips(Settings(proxy_count=1, trusted_proxies=("gateway", "10.0.0.0/24"))) == "10.0.0.0/24"
