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


def test_a_lock_lifts_when_it_says_it_will(log: FailureLog, clock: Clock) -> None:
    """unlocks_in: a window after the 4th newest of 6 failures (lock 4); then the count is 3, unlocked."""
    fail(log, clock, "alice", "198.51.100.7", 6, spacing=5)  # at t0, t0+5, ... t0+25; now t0+30
    clock.now += 40  # past the delay the 6th failure earned (16 s)
    verdict = log.verdict("alice", "198.51.100.7")
    assert verdict.locked and verdict.unlocks_in == pytest.approx(100 - 60)  # the 4th newest was at t0+10
    clock.now += verdict.unlocks_in - 0.5
    assert log.verdict("alice", "198.51.100.7").locked
    clock.now += 1
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


def test_a_charged_challenge_counts_like_a_failure(log: FailureLog, clock: Clock) -> None:
    """Fetching challenges without using them spends the same budget as failing them (no free re-rolls)."""
    reported = [log.charge("alice", "203.0.113.66").locked for _ in range(4)]
    assert reported == [[], [], [], [PAIR]]
    assert log.verdict("alice", "203.0.113.66").throttled  # a delay first, like after 4 failures
    clock.now += 60
    assert log.verdict("alice", "203.0.113.66").locked


def test_an_attempt_is_judged_without_its_own_charge_and_never_counted_twice(log: FailureLog, clock: Clock) -> None:
    keys = log._keys("alice", "203.0.113.66")
    charges = []
    for _ in range(2):  # two free failures: challenge, failed attempt, twice
        charge = log.charge("alice", "203.0.113.66")
        assert not log.verdict("alice", "203.0.113.66", excluding=charge.member).throttled
        clock.now += 5
        log.settle_failure("alice", "203.0.113.66", charge.member)
        charges.append(charge)
    assert log.client.zcard(keys[PAIR]) == 2  # one count per challenge, not two
    # The settled failure is dated to the attempt: delays run from there.
    assert log.client.zscore(keys[PAIR], charges[-1].member) == clock.now
    third = log.charge("alice", "203.0.113.66")
    # The third challenge was free to take (2 failures = the free budget); its attempt is judged by those two ...
    assert not log.verdict("alice", "203.0.113.66", excluding=third.member).throttled
    # ... while the next challenge sees three and waits.
    assert log.verdict("alice", "203.0.113.66").throttled


def test_excluding_an_unknown_member_changes_nothing(log: FailureLog, clock: Clock) -> None:
    fail(log, clock, "alice", "203.0.113.66", 4, spacing=10)
    assert log.verdict("alice", "203.0.113.66", excluding="1.0:nothere") == log.verdict("alice", "203.0.113.66")
    assert log.verdict("alice", "203.0.113.66", excluding="1.0:nothere").locked


def test_a_sign_in_takes_its_challenges_charge_back(log: FailureLog, clock: Clock) -> None:
    """A successful login leaves no count behind: not on the pair, the address or the username."""
    keys = log._keys("alice", "198.51.100.7")
    log.record_failure("bob", "198.51.100.7")  # the address's own history stays
    charge = log.charge("alice", "198.51.100.7")
    log.record_success("alice", "198.51.100.7", charge.member)
    assert log.client.zcard(keys[PAIR]) == 0
    assert log.client.zcard(keys[ADDRESS]) == 1
    assert log.client.zcard(keys["username"]) == 0


def test_settling_a_trimmed_or_expired_charge_does_not_re_add_it(log: FailureLog, clock: Clock) -> None:
    charge = log.charge("alice", "203.0.113.66")
    clock.now += 150
    assert not log.verdict("alice", "203.0.113.66").locked  # trims it out of the window
    log.settle_failure("alice", "203.0.113.66", charge.member)
    assert log.client.zcard(log._keys("alice", "203.0.113.66")[PAIR]) == 0
