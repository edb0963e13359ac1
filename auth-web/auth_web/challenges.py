"""Login and enrollment challenges: single use (atomic GETDEL), short expiry, bound to the browser session."""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from auth_web import reasons

# A challenge's purpose is the audit event of the step it is for.
PURPOSE_LOGIN = reasons.LOGIN
PURPOSE_ENROLL = reasons.ENROLL


@dataclass(frozen=True)
class Challenge:
    nonce: str
    purpose: str
    actions: tuple[str, ...]
    session_hash: str
    username: str = ""
    user_id: int | None = None


def random_actions(choices: Sequence[str], length: int) -> tuple[str, ...]:
    """``length`` actions drawn with a CSPRNG; no action twice in a row when there is a choice."""
    actions: list[str] = []
    for _ in range(length):
        pool = [a for a in choices if not actions or a != actions[-1]] or list(choices)
        actions.append(secrets.choice(pool))
    return tuple(actions)


class ChallengeStore:
    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.client = client
        self.prefix = prefix + "challenge:"
        self.ttl_seconds = ttl_seconds

    def issue(
        self,
        purpose: str,
        actions: Sequence[str],
        session_hash: str,
        username: str = "",
        user_id: int | None = None,
    ) -> Challenge:
        challenge = Challenge(secrets.token_urlsafe(24), purpose, tuple(actions), session_hash, username, user_id)
        payload = {
            "purpose": purpose,
            "actions": list(actions),
            "session_hash": session_hash,
            "username": username,
            "user_id": user_id,
        }
        self.client.set(self.prefix + challenge.nonce, json.dumps(payload), ex=self.ttl_seconds)
        return challenge

    def consume(self, nonce: str, purpose: str, session_hash: str) -> tuple[Challenge | None, str]:
        """Take the challenge out of Redis (a second use finds nothing).

        Returns (challenge, "") or (None, reason) with reason ``CHALLENGE_INVALID`` (unknown, used, expired or for
        another purpose) or ``CHALLENGE_MISMATCH`` (issued to another browser session).
        """
        if not nonce or len(nonce) > 64:
            return None, reasons.CHALLENGE_INVALID
        raw = self.client.getdel(self.prefix + nonce)
        if raw is None:
            return None, reasons.CHALLENGE_INVALID
        payload = json.loads(raw)
        if payload.get("purpose") != purpose:
            return None, reasons.CHALLENGE_INVALID
        if not hmac.compare_digest(str(payload.get("session_hash", "")), session_hash):
            return None, reasons.CHALLENGE_MISMATCH
        challenge = Challenge(
            nonce,
            payload["purpose"],
            tuple(payload.get("actions", [])),
            payload["session_hash"],
            payload.get("username", ""),
            payload.get("user_id"),
        )
        return challenge, ""
