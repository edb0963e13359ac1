"""The screen-flash sequence (palette, no repeats, durations, CSPRNG), its settings, and the capture it needs."""

from __future__ import annotations

import itertools
import random

import pytest

from auth_web import flash
from auth_web.ceremony import capture_frames_for
from auth_web.config import Settings
from auth_web.flash import LEAD_MS, PALETTE, FlashPolicy, FlashStep, frames_to_cover, random_sequence, total_ms
from auth_web.uploads import CaptureError, parse_flash_start
from faceauth_common.settings import SettingsError


def test_the_palette_is_the_six_saturated_colours() -> None:
    assert sorted(f"#{rgb:06x}" for rgb in PALETTE) == sorted(
        ["#ff0000", "#00ff00", "#0000ff", "#00ffff", "#ff00ff", "#ffff00"]
    )


@pytest.mark.parametrize("policy", [FlashPolicy(), FlashPolicy(steps=6, min_duration_ms=334, max_duration_ms=2000)])
def test_sequences_use_the_palette_never_repeat_a_colour_and_keep_their_durations(policy: FlashPolicy) -> None:
    durations: set[int] = set()
    for _ in range(300):
        steps = random_sequence(policy)
        assert len(steps) == policy.steps
        assert all(step.rgb in PALETTE for step in steps)
        assert all(a.rgb != b.rgb for a, b in itertools.pairwise(steps))
        assert all(policy.min_duration_ms <= step.duration_ms <= policy.max_duration_ms for step in steps)
        durations.update(step.duration_ms for step in steps)
    # Both ends of the range are reachable and the draws spread over it.
    assert len(durations) > 50 and min(durations) < policy.min_duration_ms + 20


def test_every_colour_is_drawn_and_a_fixed_duration_range_gives_that_duration() -> None:
    colours = {step.rgb for _ in range(100) for step in random_sequence(FlashPolicy())}
    assert colours == set(PALETTE)
    fixed = random_sequence(FlashPolicy(min_duration_ms=400, max_duration_ms=400))
    assert {step.duration_ms for step in fixed} == {400}


def test_sequences_come_from_the_csprng_not_from_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeding Python's ``random`` (what an attacker could predict) does not make sequences repeat, and the
    draws go through ``secrets``."""
    random.seed(1234)
    first = random_sequence(FlashPolicy())
    random.seed(1234)
    assert random_sequence(FlashPolicy()) != first
    calls: list[str] = []
    real_choice, real_randbelow = flash.secrets.choice, flash.secrets.randbelow
    monkeypatch.setattr(flash.secrets, "choice", lambda seq: calls.append("choice") or real_choice(seq))
    monkeypatch.setattr(flash.secrets, "randbelow", lambda n: calls.append("randbelow") or real_randbelow(n))
    random_sequence(FlashPolicy())
    assert calls.count("choice") == 4 and calls.count("randbelow") == 4


def test_steps_are_css_colours() -> None:
    assert FlashStep(0x00FFFF, 400).colour == "#00ffff"
    assert FlashStep(0xFF0000, 400).colour == "#ff0000"


def test_the_capture_covers_the_sequence_plus_its_tail() -> None:
    assert frames_to_cover(1800, 10.0) == 21  # 20 intervals of 100 ms = 2000 ms = 1800 + 200
    assert frames_to_cover(1801, 10.0) == 22
    assert frames_to_cover(2000, 10.0) == 23
    settings = Settings()
    steps = (FlashStep(0xFF0000, 450),) * 4  # the longest default sequence
    frames = capture_frames_for(settings, steps)  # 300 ms unlit lead-in + 1800 ms + 200 ms tail
    assert frames == 24 and (frames - 1) * 1000 / settings.capture.fps >= LEAD_MS + total_ms(steps) + 200
    assert capture_frames_for(settings, ()) == settings.capture.frames  # no flash: AUTH_CAPTURE_FRAMES
    short = (FlashStep(0xFF0000, 340),) * 4
    assert capture_frames_for(settings.replace(capture=settings.capture), short) == 20


def test_flash_settings_are_read_and_off_is_allowed() -> None:
    settings = Settings.from_env(
        {
            "AUTH_FLASH_STEPS": "5",
            "AUTH_FLASH_MIN_DURATION_MS": "350",
            "AUTH_FLASH_MAX_DURATION_MS": "400",
            "AUTH_FLASH_NOTICE_MS": "2000",
            "AUTH_CAPTURE_SLACK_SECONDS": "5",
            "AUTH_MAX_FRAMES": "26",  # 300 ms unlit + 5 x 400 ms + 200 ms at 10 fps
        }
    )
    assert settings.flash == FlashPolicy(steps=5, min_duration_ms=350, max_duration_ms=400, notice_ms=2000)
    assert settings.capture_slack_seconds == 5.0
    assert not Settings.from_env({"AUTH_FLASH": "false"}).flash_enabled


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # WCAG 2.3.1: no more than three changes per second.
        ({"AUTH_FLASH_MIN_DURATION_MS": "333"}, "AUTH_FLASH_MIN_DURATION_MS"),
        ({"AUTH_FLASH_MIN_DURATION_MS": "200", "AUTH_FLASH_MAX_DURATION_MS": "300"}, "AUTH_FLASH_MIN_DURATION_MS"),
        ({"AUTH_FLASH_MAX_DURATION_MS": "333"}, "AUTH_FLASH_MAX_DURATION_MS"),
        ({"AUTH_FLASH_MIN_DURATION_MS": "450", "AUTH_FLASH_MAX_DURATION_MS": "400"}, "AUTH_FLASH_MAX_DURATION_MS"),
        ({"AUTH_FLASH_MAX_DURATION_MS": "2001"}, "AUTH_FLASH_MAX_DURATION_MS"),
        ({"AUTH_FLASH_STEPS": "3"}, "AUTH_FLASH_STEPS"),
        ({"AUTH_FLASH_STEPS": "7"}, "AUTH_FLASH_STEPS"),
        ({"AUTH_FLASH_NOTICE_MS": "-1"}, "AUTH_FLASH_NOTICE_MS"),
        # The longest sequence must fit in the frames a capture may post.
        ({"AUTH_FLASH_STEPS": "6"}, "AUTH_MAX_FRAMES"),
        ({"AUTH_MAX_FRAMES": "16"}, "AUTH_MAX_FRAMES"),
    ],
)
def test_bad_flash_settings_are_refused_with_their_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_without_the_flash_the_frame_budget_is_not_checked_against_it() -> None:
    assert Settings.from_env({"AUTH_FLASH": "false", "AUTH_MAX_FRAMES": "16"}).max_frames == 16
    six = {"AUTH_FLASH_STEPS": "6", "AUTH_FLASH_MAX_DURATION_MS": "400", "AUTH_MAX_FRAMES": "30"}
    assert Settings.from_env(six).flash.steps == 6  # 300 ms unlit + 6 × 400 + 200 ms = 29 intervals: 30 frames


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("-35", -35), (" 120 ", 120), ("120000", 120_000)])
def test_flash_start_is_an_integer(raw: str, value: int) -> None:
    assert parse_flash_start(raw) == value


@pytest.mark.parametrize("raw", [None, "", "  ", "1.5", "1e3", "1_000", "+5", "NaN", "0x10", "120001", "-999999999"])
def test_a_missing_or_garbled_flash_start_is_a_capture_error(raw: str | None) -> None:
    with pytest.raises(CaptureError) as raised:
        parse_flash_start(raw)
    assert raised.value.reason == "BAD_FLASH_START"
