"""Account rules: usernames, password policy and hashing, throttling of failed logins. No Flask, no database."""

from __future__ import annotations

import math
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


# -- throttling of failed logins (pure policy; the Redis bookkeeping is in throttle.py) --------------------------
#
# Failures are counted in a sliding window (older ones are forgotten) under three keys: the claimed username from
# one client address ("pair"), the address (any username), and the username (any address). Each key has a free
# number of failures; past it every further failure makes the next attempt wait, doubling from ``base_seconds``
# up to ``max_seconds`` (a soft delay, answered 429 + Retry-After without doing any work). Only the pair and the
# address keys ever lock hard — and a lock binds that address alone, so an attacker's address cannot lock the
# victim out from another one. The username-wide key only slows down (never locks), and an address that signed
# in as the user recently is exempt from it. Nothing here depends on whether the account exists.

PAIR = "pair"
ADDRESS = "address"
USERNAME = "username"


@dataclass(frozen=True)
class Budget:
    """How many failures within the window one key may have: ``free`` before delays, ``lock`` to lock hard."""

    free: int
    lock: int | None = None  # None: delays only, never a lock


@dataclass(frozen=True)
class ThrottlePolicy:
    window_seconds: int = 900
    pair: Budget = Budget(free=3, lock=10)
    address: Budget = Budget(free=10, lock=50)
    username: Budget = Budget(free=30)
    base_seconds: float = 2.0
    max_seconds: float = 60.0

    def budget(self, key: str) -> Budget:
        return {PAIR: self.pair, ADDRESS: self.address, USERNAME: self.username}[key]

    def delay(self, failures: int, budget: Budget) -> float:
        """Seconds the next attempt waits after the latest of ``failures``: 0 within the free failures, then
        base, 2×base, 4×base, … capped at ``max_seconds``."""
        over = failures - budget.free
        if over <= 0:
            return 0.0
        return float(min(self.base_seconds * 2 ** min(over - 1, 30), self.max_seconds))

    def tracked(self, budget: Budget) -> int:
        """The most recent failures worth remembering for a key: beyond this count nothing changes any more."""
        ratio = max(self.max_seconds / self.base_seconds, 1.0)
        saturated = budget.free + 1 + math.ceil(math.log2(ratio))
        return max(saturated, budget.lock or 0)


@dataclass(frozen=True)
class Failures:
    """Failures of one key within the window, and when the latest happened (epoch seconds)."""

    count: int = 0
    latest: float | None = None
    # When the newest failure that keeps a lock on happened (the ``lock``-th newest): the count drops below the
    # lock a window after it. None: not known (then the lock is taken to last a whole window from now).
    lock_from: float | None = None


@dataclass(frozen=True)
class ThrottleVerdict:
    """``retry_after`` > 0: answer 429 now (no work done). ``locked``: refuse whatever the credentials, before
    checking any (the lock binds a name and an address, whether or not the account exists, so saying so tells
    nothing about the account), and say when it lifts: ``unlocks_in`` seconds if no failure is added."""

    retry_after: float = 0.0
    locked: bool = False
    by: str = ""  # the key that decided (PAIR, ADDRESS, USERNAME) or ""
    unlocks_in: float = 0.0

    @property
    def throttled(self) -> bool:
        return self.retry_after > 0


def judge(
    policy: ThrottlePolicy, failures: dict[str, Failures], now: float, *, known_address: bool = False
) -> ThrottleVerdict:
    """The verdict for the next attempt from the failures of each key (missing keys: none).

    ``known_address``: the client address signed in as this username recently; the username-wide delay does not
    apply to it (a distributed attack on a username must not keep its owner out of their usual place).
    """
    wait, by = 0.0, ""
    for key in (PAIR, ADDRESS, USERNAME):
        if key == USERNAME and known_address:
            continue
        seen = failures.get(key, Failures())
        if seen.latest is None:
            continue
        remaining = seen.latest + policy.delay(seen.count, policy.budget(key)) - now
        if remaining > wait:
            wait, by = remaining, key
    if wait > 0:
        return ThrottleVerdict(retry_after=wait, by=by)
    locks = []
    for key in (PAIR, ADDRESS):
        lock, seen = policy.budget(key).lock, failures.get(key, Failures())
        if lock is not None and seen.count >= lock:
            since = seen.lock_from if seen.lock_from is not None else now
            locks.append(ThrottleVerdict(locked=True, by=key, unlocks_in=since + policy.window_seconds - now))
    return max(locks, key=lambda verdict: verdict.unlocks_in, default=ThrottleVerdict())


def newly_locked(policy: ThrottlePolicy, counts_after: dict[str, int]) -> list[str]:
    """The keys that this failure (giving ``counts_after``) has just locked: counted once per lock."""
    locked = []
    for key in (PAIR, ADDRESS):
        lock = policy.budget(key).lock
        if lock is not None and counts_after.get(key, 0) == lock:
            locked.append(key)
    return locked
