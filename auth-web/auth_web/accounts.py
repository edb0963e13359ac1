"""Account rules: usernames, password policy and hashing, lockout back-off. No Flask, no database."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,30})[A-Za-z0-9]$")
USERNAME_RULES = "3 to 32 characters: letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
PASSWORD_MAX_LENGTH = 256

# OWASP's recommended Argon2id parameters (19 MiB, 2 passes, 1 lane): ~30 ms of one core per check.
# argon2-cffi's default (64 MiB, 3 passes, 4 lanes) costs ~215 ms of CPU, which was 40 % of the
# CPU budget of a whole face login on 2 cores; the face checks are the stronger factor here anyway.
# Hashes made with other parameters still verify and are upgraded at the next sign-in (needs_rehash).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the claimed user does not exist or has no password, so that a wrong
# username costs the same time as a wrong password (no username enumeration by timing).
_DUMMY_HASH = _hasher.hash("faceauth-dummy-password-for-constant-time")


class ValidationError(ValueError):
    """User input that breaks a rule; the message is shown to the user."""


def normalize_username(raw: str) -> str:
    """The key usernames are unique by (case-insensitive)."""
    return raw.strip().casefold()


def validate_username(raw: str) -> str:
    username = (raw or "").strip()
    if not USERNAME_PATTERN.fullmatch(username) or ".." in username:
        raise ValidationError(f"Usernames are {USERNAME_RULES}.")
    return username


def validate_password(password: str, username: str, min_length: int) -> str:
    if len(password) < min_length:
        raise ValidationError(f"Use at least {min_length} characters for your password.")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise ValidationError(f"Use at most {PASSWORD_MAX_LENGTH} characters for your password.")
    if password.strip() == "" or len(set(password)) < 4:
        raise ValidationError("That password is too simple; mix more different characters.")
    if username and normalize_username(username) in password.casefold():
        raise ValidationError("Your password must not contain your username.")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always does one argon2 verification, even without a hash."""
    try:
        if password_hash is None:
            _hasher.verify(_DUMMY_HASH, password)
            return False
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    base_seconds: int = 30
    max_seconds: int = 3600

    def lock_duration(self, lockout_count: int) -> dt.timedelta:
        """Length of the ``lockout_count``-th lock (0-based): base, 2×base, 4×base, … capped."""
        seconds = self.base_seconds * (2 ** min(lockout_count, 30))
        return dt.timedelta(seconds=min(seconds, self.max_seconds))


@dataclass(frozen=True)
class LockoutState:
    failed_attempts: int
    lockout_count: int
    locked_until: dt.datetime | None


def is_locked(locked_until: dt.datetime | None, now: dt.datetime) -> bool:
    if locked_until is None:
        return False
    if locked_until.tzinfo is None:  # SQLite returns naive datetimes; they are stored as UTC
        locked_until = locked_until.replace(tzinfo=dt.UTC)
    return locked_until > now


def after_failure(state: LockoutState, policy: LockoutPolicy, now: dt.datetime) -> LockoutState:
    """Count one failed login; the threshold-th consecutive failure locks the account, each lock twice as long."""
    failed = state.failed_attempts + 1
    if failed >= policy.threshold:
        return LockoutState(0, state.lockout_count + 1, now + policy.lock_duration(state.lockout_count))
    return LockoutState(failed, state.lockout_count, state.locked_until)


def after_success() -> LockoutState:
    return LockoutState(0, 0, None)
