"""Usernames, password policy, hashing and the lockout back-off."""

from __future__ import annotations

import datetime as dt

import pytest

from auth_web.accounts import (
    LockoutPolicy,
    LockoutState,
    ValidationError,
    after_failure,
    after_success,
    hash_password,
    is_locked,
    normalize_username,
    validate_password,
    validate_username,
    verify_password,
)

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


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


def test_lockout_after_threshold_then_doubling() -> None:
    policy = LockoutPolicy(threshold=5, base_seconds=30, max_seconds=3600)
    state = LockoutState(0, 0, None)
    for _ in range(4):
        state = after_failure(state, policy, NOW)
        assert state.locked_until is None
    state = after_failure(state, policy, NOW)
    assert state.locked_until == NOW + dt.timedelta(seconds=30)
    assert (state.failed_attempts, state.lockout_count) == (0, 1)
    assert is_locked(state.locked_until, NOW) and not is_locked(state.locked_until, NOW + dt.timedelta(seconds=31))
    for _ in range(5):
        state = after_failure(state, policy, NOW)
    assert state.locked_until == NOW + dt.timedelta(seconds=60)
    for _ in range(5):
        state = after_failure(state, policy, NOW)
    assert state.locked_until == NOW + dt.timedelta(seconds=120)
    assert after_success() == LockoutState(0, 0, None)


def test_lock_duration_is_capped() -> None:
    assert LockoutPolicy(5, 30, 3600).lock_duration(20) == dt.timedelta(seconds=3600)


def test_naive_lock_times_are_utc() -> None:
    assert is_locked((NOW + dt.timedelta(seconds=5)).replace(tzinfo=None), NOW)
