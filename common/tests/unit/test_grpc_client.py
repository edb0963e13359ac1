"""The gRPC client's targets and channel pool: which URI and TLS name a target becomes, how calls rotate over the
pool's channels, and how a refresh replaces them without cutting the calls still running (no network)."""

from __future__ import annotations

import pytest

from faceauth_common.grpc_client import ChannelPool, TargetError, open_channel, resolve_target
from faceauth_common.tls import GrpcSecurity, TlsNotConfigured


@pytest.mark.parametrize(
    ("target", "uri", "authority"),
    [
        ("liveness:50051", "dns:///liveness:50051", None),
        (
            "liveness-grpc.faceauth.svc.cluster.local:50051",
            "dns:///liveness-grpc.faceauth.svc.cluster.local:50051",
            None,
        ),
        ("127.0.0.1:50051", "dns:///127.0.0.1:50051", None),
        ("127.0.0.1:50051,127.0.0.1:50053", "ipv4:127.0.0.1:50051,127.0.0.1:50053", "127.0.0.1"),
        (" 127.0.0.1:1, 127.0.0.1:2 ", "ipv4:127.0.0.1:1,127.0.0.1:2", "127.0.0.1"),
        ("[::1]:50051,[::1]:50053", "ipv6:[::1]:50051,[::1]:50053", "[::1]"),
        ("dns:///liveness:50051", "dns:///liveness:50051", None),
        ("ipv4:10.0.0.1:1,10.0.0.2:1", "ipv4:10.0.0.1:1,10.0.0.2:1", None),
        ("unix:/run/liveness.sock", "unix:/run/liveness.sock", None),
    ],
)
def test_targets_become_uris_that_resolve_every_address(target: str, uri: str, authority: str | None) -> None:
    assert resolve_target(target) == (uri, authority)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "empty"),
        ("liveness", "HOST:PORT"),
        ("liveness:http", "HOST:PORT"),
        ("liveness:0", "HOST:PORT"),
        ("liveness:70000", "HOST:PORT"),
        ("http://liveness:50051", "unsupported"),
        # Two hosts in one list would let a certificate for one vouch for the other: refused.
        ("127.0.0.1:1,127.0.0.2:1", "one host"),
        ("liveness:1,liveness:2", "IP literals"),
        ("127.0.0.1:1,", "HOST:PORT"),
    ],
)
def test_bad_targets_are_refused_with_a_clear_message(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        resolve_target(target)


class FakeChannel:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.subscribed: list[object] = []

    def unary_unary(self, method: str, *args: object, **kwargs: object) -> tuple[int, str]:
        assert not self.closed, "a call on a closed channel"
        return self.number, method

    def subscribe(self, callback: object, try_to_connect: bool = False) -> None:
        self.subscribed.append(callback)

    def unsubscribe(self, callback: object) -> None:
        self.subscribed.remove(callback)

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool_of(connections: int, refresh: float, longest_call: float) -> tuple[ChannelPool, list[FakeChannel], Clock]:
    opened: list[FakeChannel] = []

    def open_one() -> FakeChannel:
        opened.append(FakeChannel(len(opened)))
        return opened[-1]

    clock = Clock()
    return ChannelPool(open_one, connections, refresh, longest_call, clock=clock), opened, clock  # type: ignore[arg-type]


def test_calls_rotate_over_every_connection_evenly() -> None:
    pool, opened, _ = pool_of(4, refresh=0, longest_call=60)
    used = [pool.unary_unary("/m")[0] for _ in range(400)]
    assert len(opened) == 4
    assert {number: used.count(number) for number in range(4)} == {0: 100, 1: 100, 2: 100, 3: 100}


def test_a_refresh_opens_new_channels_and_closes_the_old_only_after_the_longest_call() -> None:
    pool, opened, clock = pool_of(2, refresh=60, longest_call=30)
    first = list(opened)
    assert {pool.unary_unary("/m")[0] for _ in range(2)} == {0, 1}
    clock.now += 59.9
    pool.unary_unary("/m")
    assert len(opened) == 2, "refreshed too early"
    clock.now += 0.1
    assert {pool.unary_unary("/m")[0] for _ in range(2)} == {2, 3}, "calls go to the new generation"
    assert not any(channel.closed for channel in first), "closed while calls may still run on it"
    clock.now += 29.9
    pool.unary_unary("/m")
    assert not any(channel.closed for channel in first)
    clock.now += 0.1
    pool.unary_unary("/m")
    assert all(channel.closed for channel in first)
    assert not any(channel.closed for channel in opened[2:])


def test_refresh_zero_never_reopens() -> None:
    pool, opened, clock = pool_of(2, refresh=0, longest_call=30)
    clock.now += 10**6
    pool.unary_unary("/m")
    assert len(opened) == 2


def test_subscriptions_follow_the_channels_across_a_refresh_and_close_closes_everything() -> None:
    pool, opened, _ = pool_of(2, refresh=60, longest_call=30)
    callback = object()
    pool.subscribe(callback)
    pool.refresh()
    assert all(channel.subscribed == [callback] for channel in opened)
    pool.unsubscribe(callback)
    assert all(channel.subscribed == [] for channel in opened)
    pool.close()
    assert all(channel.closed for channel in opened)
    with pytest.raises(ValueError, match="closed"):
        pool.unary_unary("/m")


def test_the_pool_refuses_nonsense_sizes() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pool_of(0, refresh=60, longest_call=30)
    with pytest.raises(ValueError, match="negative"):
        pool_of(1, refresh=-1, longest_call=30)


def test_unconfigured_security_opens_no_channel() -> None:
    with pytest.raises(TlsNotConfigured):
        open_channel("127.0.0.1:1", GrpcSecurity())


def test_a_bad_target_opens_no_channel() -> None:
    with pytest.raises(TargetError):
        open_channel("127.0.0.1:1,127.0.0.2:1", GrpcSecurity(insecure=True))
