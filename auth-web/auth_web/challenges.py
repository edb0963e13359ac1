"""Login and enrollment challenges: single use (atomic GETDEL), short expiry, bound to the browser session.

A challenge carries what the capture must show (its actions, its screen-flash sequence), how many frames the page
captures for it, and when it was issued (the time limit of ``timing_problem``).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from auth_web import reasons
from auth_web.flash import FlashStep, from_payload, to_payload, total_ms

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
    flash: tuple[FlashStep, ...] = ()
    capture_frames: int = 0  # frames the page was told to capture (0: the settings' AUTH_CAPTURE_FRAMES)
    issued_at: float = 0.0  # epoch seconds, the store's clock
    # The failed-login count this challenge was charged (throttle.FailureLog.charge), settled by its attempt.
    throttle_member: str = ""


BLINK = "BLINK"
TURNS = ("TURN_LEFT", "TURN_RIGHT")


def challenge_actions_for(choices: Sequence[str], length: int) -> tuple[str, ...]:
    """The actions of a new challenge: with length 2 and both kinds allowed, one BLINK and one head turn in a
    random order (a turn is what the planarity check needs, a blink what a replayed photo cannot do); any other
    setting draws ``random_actions``."""
    turns = [action for action in choices if action in TURNS]
    if length == 2 and BLINK in choices and turns:
        pair = [BLINK, secrets.choice(turns)]
        return tuple(pair) if secrets.randbelow(2) else tuple(reversed(pair))
    return random_actions(choices, length)


def random_actions(choices: Sequence[str], length: int) -> tuple[str, ...]:
    """``length`` actions drawn with a CSPRNG; no action twice in a row when there is a choice."""
    actions: list[str] = []
    for _ in range(length):
        pool = [a for a in choices if not actions or a != actions[-1]] or list(choices)
        actions.append(secrets.choice(pool))
    return tuple(actions)


class ChallengeStore:
    def __init__(
        self, client: redis.Redis, prefix: str, ttl_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.prefix = prefix + "challenge:"
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def issue(
        self,
        purpose: str,
        actions: Sequence[str],
        session_hash: str,
        username: str = "",
        user_id: int | None = None,
        *,
        flash: Sequence[FlashStep] = (),
        capture_frames: int = 0,
        throttle_member: str = "",
    ) -> Challenge:
        challenge = Challenge(
            secrets.token_urlsafe(24),
            purpose,
            tuple(actions),
            session_hash,
            username,
            user_id,
            tuple(flash),
            capture_frames,
            self.clock(),
            throttle_member,
        )
        payload = {
            "purpose": purpose,
            "actions": list(actions),
            "session_hash": session_hash,
            "username": username,
            "user_id": user_id,
            "flash": to_payload(challenge.flash),
            "capture_frames": capture_frames,
            "issued_at": challenge.issued_at,
            "throttle_member": throttle_member,
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
            from_payload(payload.get("flash")),
            int(payload.get("capture_frames", 0)),
            float(payload.get("issued_at", 0.0)),
            str(payload.get("throttle_member", "")),
        )
        return challenge, ""


def timing_problem(
    challenge: Challenge,
    received_at: float,
    frame_times_ms: Sequence[int],
    *,
    placement_wait_ms: int,
    notice_ms: int,
    fps: float,
    slack_seconds: float,
) -> str | None:
    """Why a capture for ``challenge`` arriving at ``received_at`` (the store's clock) cannot be the page's, or None.

    ``CHALLENGE_LATE``: later than the page could have sent it — the longest it waits for the face to be placed
    (``placement_wait_ms``: past it the page asks for a new challenge), the flash notice, the capture of
    ``capture_frames`` at ``fps``, and ``slack_seconds`` for the upload and a slow machine. Time enough beyond
    that is time to render frames for the sequence offline. ``CAPTURE_TOO_EARLY``: sooner than the capture
    could have taken — the span of its own frame times, or the flash sequence, which the page paints in real time.
    """
    elapsed = received_at - challenge.issued_at
    notice = notice_ms / 1000 if challenge.flash else 0.0
    if elapsed > placement_wait_ms / 1000 + notice + challenge.capture_frames / fps + slack_seconds:
        return reasons.CHALLENGE_LATE
    span_ms = frame_times_ms[-1] - frame_times_ms[0] if frame_times_ms else 0
    if elapsed * 1000 < max(span_ms, total_ms(challenge.flash)):
        return reasons.CAPTURE_TOO_EARLY
    return None
