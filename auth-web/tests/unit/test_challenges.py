"""Challenges are single use, expire, and belong to one browser session (fakeredis: no server needed)."""

from __future__ import annotations

import itertools

import fakeredis

from auth_web.challenges import PURPOSE_ENROLL, PURPOSE_LOGIN, ChallengeStore, random_actions


def store(ttl: int = 60) -> ChallengeStore:
    return ChallengeStore(fakeredis.FakeRedis(), "test:", ttl)


def test_a_challenge_can_be_used_once() -> None:
    challenges = store()
    issued = challenges.issue(PURPOSE_LOGIN, ("BLINK",), "session-a", username="alice")
    used, reason = challenges.consume(issued.nonce, PURPOSE_LOGIN, "session-a")
    assert used is not None and reason == ""
    assert used.username == "alice" and used.actions == ("BLINK",)
    again, reason = challenges.consume(issued.nonce, PURPOSE_LOGIN, "session-a")
    assert again is None and reason == "CHALLENGE_INVALID"


def test_a_challenge_is_bound_to_its_session_and_purpose() -> None:
    challenges = store()
    issued = challenges.issue(PURPOSE_LOGIN, ("BLINK",), "session-a", username="alice")
    assert challenges.consume(issued.nonce, PURPOSE_LOGIN, "session-b") == (None, "CHALLENGE_SESSION_MISMATCH")
    issued = challenges.issue(PURPOSE_ENROLL, ("BLINK",), "session-a", user_id=7)
    assert challenges.consume(issued.nonce, PURPOSE_LOGIN, "session-a") == (None, "CHALLENGE_INVALID")


def test_challenges_expire() -> None:
    challenges = store(ttl=30)
    issued = challenges.issue(PURPOSE_LOGIN, ("BLINK",), "s")
    ttl = challenges.client.ttl("test:challenge:" + issued.nonce)
    assert 0 < ttl <= 30


def test_unknown_or_malformed_nonces_are_invalid() -> None:
    challenges = store()
    assert challenges.consume("", PURPOSE_LOGIN, "s") == (None, "CHALLENGE_INVALID")
    assert challenges.consume("x" * 500, PURPOSE_LOGIN, "s") == (None, "CHALLENGE_INVALID")
    assert challenges.consume("never-issued", PURPOSE_LOGIN, "s") == (None, "CHALLENGE_INVALID")


def test_random_actions() -> None:
    choices = ("BLINK", "TURN_LEFT", "TURN_RIGHT")
    for _ in range(50):
        actions = random_actions(choices, 3)
        assert len(actions) == 3 and set(actions) <= set(choices)
        assert all(a != b for a, b in itertools.pairwise(actions))
    assert random_actions(("BLINK",), 2) == ("BLINK", "BLINK")
    assert random_actions(choices, 0) == ()
    assert len({random_actions(choices, 2) for _ in range(60)}) > 1
