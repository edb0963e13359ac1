"""Challenges are single use, expire, and belong to one browser session (fakeredis: no server needed)."""

from __future__ import annotations

import itertools

import fakeredis
import pytest

from auth_web.challenges import (
    PURPOSE_ENROLL,
    PURPOSE_LOGIN,
    Challenge,
    ChallengeStore,
    challenge_actions_for,
    random_actions,
    timing_problem,
)
from auth_web.flash import FlashStep


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


def test_a_challenge_keeps_its_flash_frames_issue_time_and_charge() -> None:
    clock = iter([1000.5]).__next__
    challenges = ChallengeStore(fakeredis.FakeRedis(), "test:", 60, clock=clock)
    steps = (FlashStep(0xFF0000, 400), FlashStep(0x00FFFF, 350))
    issued = challenges.issue(
        PURPOSE_LOGIN, ("BLINK",), "s", username="alice", flash=steps, capture_frames=20, throttle_member="m1"
    )
    used, _ = challenges.consume(issued.nonce, PURPOSE_LOGIN, "s")
    assert used == issued
    assert (used.flash, used.capture_frames, used.issued_at, used.throttle_member) == (steps, 20, 1000.5, "m1")


def test_the_default_pair_is_one_blink_and_one_turn_in_random_order() -> None:
    choices = ("BLINK", "TURN_LEFT", "TURN_RIGHT")
    seen = {challenge_actions_for(choices, 2) for _ in range(200)}
    assert seen == {
        ("BLINK", "TURN_LEFT"),
        ("BLINK", "TURN_RIGHT"),
        ("TURN_LEFT", "BLINK"),
        ("TURN_RIGHT", "BLINK"),
    }
    assert {challenge_actions_for(("BLINK", "TURN_RIGHT"), 2) for _ in range(60)} == {
        ("BLINK", "TURN_RIGHT"),
        ("TURN_RIGHT", "BLINK"),
    }


def test_other_settings_keep_random_actions() -> None:
    assert challenge_actions_for(("BLINK",), 2) == ("BLINK", "BLINK")  # no turn allowed
    assert challenge_actions_for(("BLINK",), 1) == ("BLINK",)
    assert challenge_actions_for(("BLINK", "TURN_LEFT"), 0) == ()
    three = challenge_actions_for(("BLINK", "TURN_LEFT", "TURN_RIGHT"), 3)
    assert len(three) == 3 and all(a != b for a, b in itertools.pairwise(three))
    turns_only = {challenge_actions_for(("TURN_LEFT", "TURN_RIGHT"), 2) for _ in range(40)}
    assert turns_only == {("TURN_LEFT", "TURN_RIGHT"), ("TURN_RIGHT", "TURN_LEFT")}


FLASH = (FlashStep(0xFF0000, 500), FlashStep(0x00FF00, 500), FlashStep(0x0000FF, 500), FlashStep(0xFFFF00, 500))
TIMES = [i * 100 for i in range(23)]  # 2.2 s of frames at 10 fps


def _timing(elapsed: float, flash=FLASH, times=TIMES, slack=8.0):  # type: ignore[no-untyped-def]
    challenge = Challenge("n", PURPOSE_LOGIN, ("BLINK",), "s", flash=flash, capture_frames=23, issued_at=5000.0)
    return timing_problem(
        challenge, 5000.0 + elapsed, times, placement_wait_ms=3000, notice_ms=1500, fps=10.0, slack_seconds=slack
    )


def test_a_capture_in_the_pages_time_passes() -> None:
    # placement wait 3 s + notice 1.5 s + 23 frames at 10 fps (2.3 s) + an upload: about 7 s.
    assert _timing(7.0) is None
    assert _timing(3 + 1.5 + 2.3 + 8.0 - 0.01) is None  # right at the limit


@pytest.mark.parametrize("elapsed", [3 + 1.5 + 2.3 + 8.0 + 0.01, 30.0, 59.0])
def test_a_capture_later_than_the_page_could_send_it_is_late(elapsed: float) -> None:
    assert _timing(elapsed) == "CHALLENGE_LATE"


def test_the_notice_counts_only_with_a_flash() -> None:
    assert _timing(3 + 2.3 + 8.0 + 1.0, flash=()) == "CHALLENGE_LATE"
    assert _timing(3 + 2.3 + 8.0 + 1.0) is None


@pytest.mark.parametrize(
    ("elapsed", "times", "flash"),
    [
        (1.9, TIMES, FLASH),  # the flash alone takes 2.0 s to paint
        (2.1, TIMES, FLASH),  # the frames span 2.2 s
        (0.5, [0, 100, 200, 3000], ()),  # no flash: the frames' own span
        (0.0, [], FLASH),
    ],
)
def test_a_capture_sooner_than_it_could_be_filmed_is_too_early(elapsed: float, times: list[int], flash) -> None:  # type: ignore[no-untyped-def]
    assert _timing(elapsed, flash=flash, times=times) == "CAPTURE_TOO_EARLY"


def test_just_after_the_capture_could_end_is_not_too_early() -> None:
    assert _timing(2.25) is None
    assert _timing(0.0, flash=(), times=[]) is None
