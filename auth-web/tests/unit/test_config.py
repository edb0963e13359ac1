"""Settings come from the environment; production refuses a default or missing secret."""

from __future__ import annotations

import pytest

from auth_web.config import DEV_SECRET_KEY, Settings
from faceauth_common.settings import SettingsError

STRONG_SECRET = "x" * 16 + "y" * 16 + "z" * 8


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.liveness_target == "127.0.0.1:50051"
    assert settings.recognition_target == "127.0.0.1:50052"
    assert settings.database_url == "postgresql+psycopg2://postgres@127.0.0.1:5432/faceauth"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.listen == "127.0.0.1:8000"
    assert (settings.capture.frames, settings.capture.fps) == (15, 10.0)
    assert (settings.capture.width, settings.capture.height, settings.capture.jpeg_quality) == (640, 480, 0.85)
    # 24 frames: a capture covering the longest default flash sequence (300 ms unlit + 4 × 450 ms + 200 ms at 10 fps).
    assert (settings.max_frames, settings.max_frame_bytes) == (24, 1024 * 1024)
    assert settings.max_content_length <= 25 * 1024 * 1024
    assert (settings.challenge_length, settings.challenge_actions) == (2, ("BLINK", "TURN_LEFT", "TURN_RIGHT"))
    assert settings.flash_enabled and settings.capture_slack_seconds == 8.0
    assert (settings.flash.steps, settings.flash.min_duration_ms, settings.flash.max_duration_ms) == (4, 340, 450)
    assert settings.flash.notice_ms == 1500
    assert settings.factors == "password+face" and settings.password_required
    assert (settings.lockout_window_seconds, settings.lockout_threshold, settings.lockout_address_threshold) == (
        900,
        10,
        50,
    )
    assert (settings.throttle_base_seconds, settings.throttle_max_seconds) == (2.0, 60.0)


@pytest.mark.parametrize("secret", [None, "", DEV_SECRET_KEY, "short-secret"])
def test_production_refuses_default_missing_or_weak_secret(secret: str | None) -> None:
    env = {"FACEAUTH_ENV": "production"}
    if secret is not None:
        env["FACEAUTH_SECRET_KEY"] = secret
    with pytest.raises(SettingsError, match="FACEAUTH_SECRET_KEY"):
        Settings.from_env(env)


def test_production_accepts_a_strong_secret() -> None:
    settings = Settings.from_env(
        {"FACEAUTH_ENV": "production", "FACEAUTH_SECRET_KEY": STRONG_SECRET, "FACEAUTH_TEMPLATE_KEY": "k" * 43}
    )
    assert settings.production and settings.secret_key == STRONG_SECRET


def test_development_falls_back_to_the_dev_secret() -> None:
    assert Settings.from_env({"FACEAUTH_ENV": "development"}).secret_key == DEV_SECRET_KEY


def test_values_are_parsed_and_validated() -> None:
    settings = Settings.from_env(
        {
            "AUTH_CHALLENGE_ACTIONS": "blink, turn_left",
            "AUTH_CHALLENGE_LENGTH": "2",
            "AUTH_FACTORS": "face",
            "AUTH_CAPTURE_FRAMES": "12",
            "AUTH_LOCKOUT_THRESHOLD": "3",
            "AUTH_PROXY_COUNT": "1",
        }
    )
    assert settings.challenge_actions == ("BLINK", "TURN_LEFT")
    assert settings.challenge_length == 2
    assert not settings.password_required
    assert settings.capture.frames == 12
    assert settings.lockout_threshold == 3
    assert settings.proxy_count == 1


@pytest.mark.parametrize(
    "env",
    [
        {"AUTH_CHALLENGE_ACTIONS": "SMILE"},
        {"AUTH_FACTORS": "password"},
        {"AUTH_CAPTURE_FRAMES": "40"},
        {"AUTH_CAPTURE_FRAMES": "3", "AUTH_MIN_FRAMES": "5"},
        {"FACEAUTH_ENV": "staging"},
        {"AUTH_LOCKOUT_THRESHOLD": "many"},
        {"AUTH_LOCKOUT_WINDOW_SECONDS": "0"},
        {"AUTH_THROTTLE_BASE_SECONDS": "10", "AUTH_THROTTLE_MAX_SECONDS": "5"},
        {"AUTH_FLASH": "maybe"},
        {"AUTH_CAPTURE_SLACK_SECONDS": "0"},
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)
