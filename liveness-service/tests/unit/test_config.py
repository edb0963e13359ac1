import pytest

from faceauth_common.settings import SettingsError
from liveness_service.config import Settings
from liveness_service.passive import DEFAULT_MODEL


def test_defaults():
    settings = Settings.from_env({})
    assert settings.checks == {"sanity", "passive", "flash", "active"}
    assert settings.limits.max_frames == 24
    assert settings.flash.lag_min_ms == 0.0 and settings.flash.lag_max_ms == 300.0
    assert settings.allowed_actions == ("BLINK", "TURN_LEFT", "TURN_RIGHT")
    assert settings.model_path == DEFAULT_MODEL
    assert settings.live_threshold is None
    assert settings.nominal_fps == 10.0


def test_passive_only_and_overrides():
    settings = Settings.from_env(
        {
            "LIVENESS_CHECKS": "passive",
            "LIVENESS_LIVE_THRESHOLD": "0.7",
            "LIVENESS_TURN_DEGREES": "20",
            "LIVENESS_ALLOWED_ACTIONS": "blink",
        }
    )
    assert settings.checks == {"passive"}
    assert settings.live_threshold == 0.7
    assert settings.challenge.turn_degrees == 20.0
    assert settings.allowed_actions == ("BLINK",)


@pytest.mark.parametrize(
    "env",
    [
        {"LIVENESS_CHECKS": "passive,magic"},
        {"LIVENESS_ALLOWED_ACTIONS": "BLINK,SMILE"},
        {"LIVENESS_LIVE_THRESHOLD": "1.5"},
        {"LIVENESS_MODEL_PATH": "/nonexistent/model.tflite"},
        {"LIVENESS_MIN_FRAMES": "zero"},
        {"LIVENESS_MAX_FRAMES": "33"},
        {"LIVENESS_FLASH_THRESHOLD": "1.5"},
        {"LIVENESS_FLASH_LAG_MAX_MS": "100", "LIVENESS_FLASH_LAG_MIN_MS": "200"},
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env):
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)
