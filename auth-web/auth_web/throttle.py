"""Failed-login bookkeeping in Redis for the throttling policy of accounts.py (``judge``).

Every failure is one member of a sorted set scored by its time, one set per key: the claimed username from one
client address (``pair``), the address, the username. Reading trims what fell out of the window first, so the
count is a sliding window: a failure is forgotten ``window_seconds`` after it happened, and each set expires on
its own when its key goes quiet. A set keeps only the newest ``ThrottlePolicy.tracked`` members (more would not
change any verdict), so a username under a distributed attack costs bounded memory.

Keys hold SHA-256 digests, never a username or an address. Addresses are grouped like an attacker holds them:
an IPv4 address, an IPv6 /64 (one customer's network).

A login challenge is charged as a failure when it is issued (``charge``): fetching challenges until one is easy
costs the same budget as failing them. Its attempt then settles that one count instead of adding another
(``settle_failure`` on a refusal, ``record_success`` takes it back on a sign-in), and judges itself without it
(``verdict(..., excluding=member)``), so no attempt pays twice and a sign-in leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from auth_web.accounts import (
    ADDRESS,
    PAIR,
    USERNAME,
    Budget,
    Failures,
    ThrottlePolicy,
    ThrottleVerdict,
    judge,
    newly_locked,
    normalize_username,
)
from auth_web.config import Settings


def policy_from(settings: Settings) -> ThrottlePolicy:
    return ThrottlePolicy(
        window_seconds=settings.lockout_window_seconds,
        pair=Budget(free=settings.throttle_free_attempts, lock=settings.lockout_threshold),
        address=Budget(free=settings.throttle_address_free_attempts, lock=settings.lockout_address_threshold),
        username=Budget(free=settings.throttle_username_free_attempts),
        base_seconds=settings.throttle_base_seconds,
        max_seconds=settings.throttle_max_seconds,
    )


@dataclass(frozen=True)
class Charge:
    """One failure counted ahead (a login challenge): its sorted-set ``member``, and the keys it just locked."""

    member: str
    locked: list[str]


def address_group(address: str) -> str:
    """The unit an address is throttled as: the IPv4 address itself, the /64 of an IPv6 address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class FailureLog:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        policy: ThrottlePolicy,
        known_address_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix + "throttle:"
        self.policy = policy
        self.known_address_seconds = known_address_seconds
        self.clock = clock

    # -- keys -----------------------------------------------------------------------------------------

    def _keys(self, username: str, address: str) -> dict[str, str]:
        user, where = _digest(normalize_username(username)), _digest(address_group(address))
        return {
            PAIR: f"{self.prefix}pair:{user}:{where}",
            ADDRESS: f"{self.prefix}address:{where}",
            USERNAME: f"{self.prefix}username:{user}",
        }

    def _known_key(self, username: str) -> str:
        return f"{self.prefix}known:{_digest(normalize_username(username))}"

    # -- reading and writing --------------------------------------------------------------------------

    def verdict(self, username: str, address: str, excluding: str = "") -> ThrottleVerdict:
        """What the policy says about the next attempt for ``username`` from ``address``; ``excluding``: a charged
        challenge's member, left out (the attempt that consumes it is judged as things stood before it)."""
        now = self.clock()
        keys = self._keys(username, address)
        pipe = self.client.pipeline(transaction=False)
        for name, key in keys.items():
            pipe.zremrangebyscore(key, "-inf", now - self.policy.window_seconds)
            pipe.zcard(key)
            # The newest failures, one more than a lock needs (``excluding`` may be among them).
            pipe.zrange(key, -((self.policy.budget(name).lock or 1) + 1), -1, withscores=True)
            pipe.zscore(key, excluding or "-")
        pipe.sismember(self._known_key(username), _digest(address_group(address)))
        answers = pipe.execute()
        failures = {}
        own = excluding.encode()
        for index, name in enumerate(keys):
            count, newest, charged = answers[4 * index + 1], answers[4 * index + 2], answers[4 * index + 3]
            others = [score for member, score in newest if not (excluding and member == own)]
            count = int(count) - (1 if excluding and charged is not None else 0)
            lock = self.policy.budget(name).lock
            failures[name] = Failures(
                count,
                float(others[-1]) if others and count > 0 else None,
                float(others[-lock]) if lock is not None and len(others) >= lock else None,
            )
        known = bool(answers[-1]) and self.known_address_seconds > 0
        return judge(self.policy, failures, now, known_address=known)

    def record_failure(self, username: str, address: str) -> list[str]:
        """Count one failed login; returns the keys it has just locked (PAIR, ADDRESS) for the metrics."""
        return self.charge(username, address).locked

    def charge(self, username: str, address: str) -> Charge:
        """Count one failure now (a login challenge being issued) and say which member it is."""
        now = self.clock()
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        keys = self._keys(username, address)
        pipe = self.client.pipeline(transaction=True)
        for name, key in keys.items():
            pipe.zadd(key, {member: now})
            pipe.zremrangebyscore(key, "-inf", now - self.policy.window_seconds)
            # Keep only the newest members that can still matter (bounded memory under a distributed attack).
            pipe.zremrangebyrank(key, 0, -(self.policy.tracked(self.policy.budget(name)) + 1))
            pipe.zcard(key)
            pipe.expire(key, self.policy.window_seconds + 1)
        answers = pipe.execute()
        counts = {name: int(answers[5 * index + 3]) for index, name in enumerate(keys)}
        return Charge(member, newly_locked(self.policy, counts))

    def settle_failure(self, username: str, address: str, member: str) -> None:
        """The charged challenge's attempt failed: its one count stays, now dated to the failure (delays run from
        the latest failure), and its window starts again. A member already trimmed or expired is not re-added."""
        now = self.clock()
        pipe = self.client.pipeline(transaction=True)
        for key in self._keys(username, address).values():
            pipe.zadd(key, {member: now}, xx=True)
            pipe.expire(key, self.policy.window_seconds + 1)
        pipe.execute()

    def record_success(self, username: str, address: str, member: str = "") -> None:
        """A sign-in: this address's failures for the username are settled, the charge of the challenge it used
        (``member``) is taken back everywhere, and the address becomes known for the username.

        The address-wide and username-wide counts otherwise stay: signing in to one's own account must not reset
        the budget an address spends on other accounts, nor what other addresses spent on this one.
        """
        keys = self._keys(username, address)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(keys[PAIR])
        if member:
            pipe.zrem(keys[ADDRESS], member)
            pipe.zrem(keys[USERNAME], member)
        if self.known_address_seconds > 0:
            known = self._known_key(username)
            pipe.sadd(known, _digest(address_group(address)))
            pipe.expire(known, self.known_address_seconds)
        pipe.execute()

    def forget_username(self, username: str) -> int:
        """Drop every failure counted for ``username`` (all addresses), e.g. when an operator resets it."""
        user = _digest(normalize_username(username))
        keys = [f"{self.prefix}username:{user}", *self.client.scan_iter(match=f"{self.prefix}pair:{user}:*")]
        return int(self.client.delete(*keys))


def failure_log(client: redis.Redis, settings: Settings) -> FailureLog:
    return FailureLog(client, settings.redis_prefix, policy_from(settings), settings.throttle_known_address_seconds)
