"""The Redis bookkeeping of failed logins (fakeredis, a hand-driven clock): sliding window, keys, exemptions."""

from __future__ import annotations

import fakeredis
import pytest

from auth_web.accounts import ADDRESS, PAIR, Budget, ThrottlePolicy
from auth_web.throttle import FailureLog, address_group

POLICY = ThrottlePolicy(
    window_seconds=100, pair=Budget(free=2, lock=4), address=Budget(free=5, lock=8), username=Budget(free=6)
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(clock: Clock) -> FailureLog:
    return FailureLog(fakeredis.FakeRedis(), "test:", POLICY, known_address_seconds=3600, clock=clock)


def fail(log: FailureLog, clock: Clock, username: str, address: str, times: int, spacing: float = 10.0) -> None:
    for _ in range(times):
        log.record_failure(username, address)
        clock.now += spacing  # past the delays these few failures earn, so only counts matter


def test_failures_older_than_the_window_are_forgotten(log: FailureLog, clock: Clock) -> None:
    fail(log, clock, "alice", "198.51.100.7", 4, spacing=1)
    clock.now += 60
    assert log.verdict("alice", "198.51.100.7").locked
    clock.now += 100  # every failure is now older than the window
    verdict = log.verdict("alice", "198.51.100.7")
    assert not verdict.locked and not verdict.throttled


def test_the_window_slides(log: FailureLog, clock: Clock) -> None:
    log.record_failure("alice", "198.51.100.7")
    clock.now += 70
    fail(log, clock, "alice", "198.51.100.7", 3, spacing=1)  # 4 within 100 s: locked
    clock.now += 25  # the first is 98 s old
    assert log.verdict("alice", "198.51.100.7").locked
    clock.now += 3  # the first is out: 3 left
    assert not log.verdict("alice", "198.51.100.7").locked


def test_one_address_cannot_lock_the_owner_out_from_another(log: FailureLog, clock: Clock) -> None:
    fail(log, clock, "alice", "203.0.113.66", 4)
    assert log.verdict("alice", "203.0.113.66").locked
    assert log.verdict("Alice", "198.51.100.7") == log.verdict("nobody", "198.51.100.7")


def test_an_address_spraying_many_usernames_is_locked_for_all_of_them(log: FailureLog, clock: Clock) -> None:
    for index in range(8):
        fail(log, clock, f"user{index}", "203.0.113.66", 1)
    verdict = log.verdict("someone-new", "203.0.113.66")
    assert verdict.locked and verdict.by == ADDRESS
    assert not log.verdict("someone-new", "198.51.100.7").locked


def test_record_failure_reports_a_new_lock_once(log: FailureLog, clock: Clock) -> None:
    reported = [log.record_failure("alice", "203.0.113.66") for _ in range(6)]
    assert reported == [[], [], [], [PAIR], [], []]


def test_a_sign_in_settles_the_pair_and_makes_the_address_known(log: FailureLog, clock: Clock) -> None:
    fail(log, clock, "alice", "198.51.100.7", 3, spacing=0)
    assert log.verdict("alice", "198.51.100.7").throttled
    log.record_success("alice", "198.51.100.7")
    assert not log.verdict("alice", "198.51.100.7").throttled
    # Many addresses fail for alice: the username-wide delay holds everyone back but her known address.
    for index in range(10):
        log.record_failure("alice", f"203.0.113.{index}")
    assert log.verdict("alice", "192.0.2.1").throttled
    assert not log.verdict("alice", "198.51.100.7").throttled


def test_sets_stay_bounded(log: FailureLog, clock: Clock) -> None:
    for _ in range(50):
        log.record_failure("alice", "203.0.113.66")
    keys = log._keys("alice", "203.0.113.66")
    assert log.client.zcard(keys[PAIR]) == POLICY.tracked(POLICY.pair)
    assert 0 < log.client.ttl(keys[PAIR]) <= POLICY.window_seconds + 1


def test_forget_username_drops_its_failures_from_every_address(log: FailureLog, clock: Clock) -> None:
    fail(log, clock, "alice", "203.0.113.66", 4)
    fail(log, clock, "alice", "203.0.113.67", 4)
    log.forget_username("ALICE")
    assert not log.verdict("alice", "203.0.113.66").locked and not log.verdict("alice", "203.0.113.67").locked


def test_keys_hold_no_username_or_address(log: FailureLog) -> None:
    log.record_failure("alice", "203.0.113.66")
    names = b" ".join(log.client.keys("*"))
    assert b"alice" not in names and b"203.0.113" not in names


@pytest.mark.parametrize(
    ("address", "group"),
    [
        ("203.0.113.66", "203.0.113.66"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.66", "203.0.113.66"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_addresses_are_grouped_as_an_attacker_holds_them(address: str, group: str) -> None:
    assert address_group(address) == group
