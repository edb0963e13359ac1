"""Usernames, password policy, hashing and the throttling policy for failed logins."""

from __future__ import annotations

import pytest

from auth_web.accounts import (
    ADDRESS,
    PAIR,
    USERNAME,
    Budget,
    Failures,
    ThrottlePolicy,
    ValidationError,
    hash_password,
    judge,
    newly_locked,
    normalize_username,
    validate_password,
    validate_username,
    verify_password,
)

NOW = 1_800_000_000.0
POLICY = ThrottlePolicy(
    window_seconds=900,
    pair=Budget(free=3, lock=10),
    address=Budget(free=10, lock=50),
    username=Budget(free=30),
    base_seconds=2,
    max_seconds=60,
)


@pytest.mark.parametrize("name", ["alice", "Bob_Smith", "george.w.bush", "a-1", "X9z"])
def test_valid_usernames(name: str) -> None:
    assert validate_username(f"  {name} ") == name


@pytest.mark.parametrize("name", ["", "ab", "a" * 33, "-alice", "alice.", "al ice", "al..ice", "ålice", "a/b", "<b>"])
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(ValidationError):
        validate_username(name)


def test_usernames_are_case_insensitive() -> None:
    assert normalize_username("Alice") == normalize_username("ALICE ") == "alice"


@pytest.mark.parametrize(
    ("password", "fragment"),
    [("short", "at least"), ("aaaaaaaaaaaa", "too simple"), ("my-alice-password", "username"), ("x" * 300, "at most")],
)
def test_password_policy(password: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        validate_password(password, "alice", 10)


def test_good_password_passes() -> None:
    assert validate_password("correct horse battery", "alice", 10) == "correct horse battery"


def test_hash_and_verify() -> None:
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "wrong horse battery")
    assert not verify_password(None, "anything")  # unknown user: a dummy verification, still False
    assert not verify_password("not-a-hash", "anything")


def test_delays_start_after_the_free_failures_then_double_up_to_the_cap() -> None:
    delays = [POLICY.delay(n, POLICY.pair) for n in range(12)]
    assert delays == [0, 0, 0, 0, 2, 4, 8, 16, 32, 60, 60, 60]
    assert POLICY.delay(10_000, POLICY.username) == 60


def test_a_delay_is_a_429_until_it_has_passed_since_the_latest_failure() -> None:
    failures = {PAIR: Failures(5, NOW)}  # 2 over the free 3: 4 s
    assert judge(POLICY, failures, NOW + 1).retry_after == pytest.approx(3)
    assert judge(POLICY, failures, NOW + 1).by == PAIR and not judge(POLICY, failures, NOW + 1).locked
    assert not judge(POLICY, failures, NOW + 4).throttled
    assert not judge(POLICY, {PAIR: Failures(3, NOW)}, NOW).throttled  # within the free failures


def test_the_pair_and_the_address_lock_hard_once_their_delay_has_passed() -> None:
    locked = judge(POLICY, {PAIR: Failures(10, NOW)}, NOW + 61)
    assert locked.locked and locked.by == PAIR and not locked.throttled
    assert judge(POLICY, {ADDRESS: Failures(50, NOW)}, NOW + 61).locked
    assert not judge(POLICY, {PAIR: Failures(9, NOW), ADDRESS: Failures(49, NOW)}, NOW + 61).locked


def test_a_lock_says_when_it_lifts_the_later_of_two_locks_decides() -> None:
    """The count drops below the lock a window after the lock-th newest failure; with the pair and the address
    both locked, the one that lasts longer is the wait."""
    window = POLICY.window_seconds
    pair = judge(POLICY, {PAIR: Failures(10, NOW, lock_from=NOW - 100)}, NOW + 61)
    assert pair.unlocks_in == pytest.approx(window - 161) and pair.by == PAIR
    both = {PAIR: Failures(12, NOW, lock_from=NOW - 300), ADDRESS: Failures(50, NOW, lock_from=NOW - 10)}
    verdict = judge(POLICY, both, NOW + 61)
    assert verdict.by == ADDRESS and verdict.unlocks_in == pytest.approx(window - 71)
    assert judge(POLICY, {PAIR: Failures(9, NOW, lock_from=None)}, NOW + 61).unlocks_in == 0


def test_the_username_wide_budget_only_ever_slows_down() -> None:
    """A distributed attack on one username (thousands of failures) never locks it: delays only, capped."""
    verdict = judge(POLICY, {USERNAME: Failures(100_000, NOW)}, NOW + 1)
    assert verdict.throttled and verdict.by == USERNAME and verdict.retry_after <= 60
    assert judge(POLICY, {USERNAME: Failures(100_000, NOW)}, NOW + 60) == judge(POLICY, {}, NOW)


def test_an_address_that_signed_in_as_the_user_is_exempt_from_the_username_wide_delay() -> None:
    under_attack = {USERNAME: Failures(1000, NOW), PAIR: Failures(0), ADDRESS: Failures(0)}
    assert judge(POLICY, under_attack, NOW + 1).throttled
    assert not judge(POLICY, under_attack, NOW + 1, known_address=True).throttled
    # ... but not from its own pair and address budgets.
    own = {**under_attack, PAIR: Failures(5, NOW)}
    assert judge(POLICY, own, NOW + 1, known_address=True).by == PAIR


def test_the_longest_wait_decides() -> None:
    failures = {PAIR: Failures(5, NOW), ADDRESS: Failures(15, NOW), USERNAME: Failures(31, NOW)}
    verdict = judge(POLICY, failures, NOW)
    assert (verdict.by, verdict.retry_after) == (ADDRESS, 32)


def test_a_lock_is_counted_once_when_its_threshold_is_reached() -> None:
    assert newly_locked(POLICY, {PAIR: 10, ADDRESS: 12, USERNAME: 10}) == [PAIR]
    assert newly_locked(POLICY, {PAIR: 11, ADDRESS: 50}) == [ADDRESS]
    assert newly_locked(POLICY, {PAIR: 3}) == []


def test_only_the_failures_that_can_matter_are_tracked() -> None:
    # Free 3, then 2, 4, 8, 16, 32, 60 s: the 9th failure saturates the delay; the lock needs 10.
    assert POLICY.tracked(POLICY.pair) == 10
    assert POLICY.tracked(POLICY.username) == 30 + 1 + 5
