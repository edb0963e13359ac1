import shutil

import pytest

from faceauth_common.settings import SettingsError
from liveness_service.config import Settings
from liveness_service.passive import PACKAGE_MODELS


def test_defaults():
    settings = Settings.from_env({})
    assert settings.checks == {"sanity", "passive", "flash", "active"}
    assert settings.limits.max_frames == 24
    assert settings.flash.lag_min_ms == 0.0 and settings.flash.lag_max_ms == 300.0
    assert settings.allowed_actions == ("BLINK", "TURN_LEFT", "TURN_RIGHT")
    assert settings.passive_model.members == (
        PACKAGE_MODELS / "minifasnet_v2.tflite",
        PACKAGE_MODELS / "minifasnet_v1se.tflite",
    )
    assert settings.passive_model.version.startswith("silent-face-fused")
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
        {"LIVENESS_PASSIVE_MODEL": "/nonexistent/model.tflite"},
        {"LIVENESS_PASSIVE_MODEL": "no_such_model"},
        {"LIVENESS_MODEL_PATH": str(PACKAGE_MODELS / "minifasnet_v2.tflite")},
        {"LIVENESS_MIN_FRAMES": "zero"},
        {"LIVENESS_MAX_FRAMES": "33"},
        {"LIVENESS_FLASH_THRESHOLD": "1.5"},
        {"LIVENESS_FLASH_LAG_MAX_MS": "100", "LIVENESS_FLASH_LAG_MIN_MS": "200"},
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env):
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_the_first_model_alone_for_comparison(tmp_path):
    alone = Settings.from_env({"LIVENESS_PASSIVE_MODEL": "minifasnet_v2"}).passive_model
    assert alone.members == (PACKAGE_MODELS / "minifasnet_v2.tflite",)
    assert alone.version == "minifasnet-v2-2.7-80x80/1" and alone.threshold == 0.9
    # A path to a .tflite (its .json beside it) names the same model, as an operator's own trained model would be.
    by_path = Settings.from_env({"LIVENESS_PASSIVE_MODEL": str(PACKAGE_MODELS / "minifasnet_v2.tflite")}).passive_model
    assert by_path == alone
    # A fusion's members sit beside its spec; one that is missing is refused at start, not at the first Check.
    for suffix in (".tflite", ".json"):
        shutil.copy(PACKAGE_MODELS / f"minifasnet_v2{suffix}", tmp_path)
    broken = tmp_path / "fused.json"
    broken.write_text('{"name": "x", "version": "x/1", "members": ["minifasnet_v2", "gone"], "threshold": 0.5}')
    with pytest.raises(SettingsError, match=r"gone\.tflite"):
        Settings.from_env({"LIVENESS_PASSIVE_MODEL": str(broken)})
