"""Settings of the liveness service, read once from the environment (see docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from faceauth_common.grpc_server import ServerSettings
from faceauth_common.imaging import ImageLimits
from faceauth_common.settings import SettingsError, env_float, env_int, env_list, env_str
from liveness_service.challenge import ACTIONS, ChallengeThresholds
from liveness_service.flash import FlashThresholds
from liveness_service.motion import MotionThresholds
from liveness_service.passive import DEFAULT_PASSIVE, PassiveSpec, resolve_spec
from liveness_service.planarity import PlanarityThresholds
from liveness_service.sanity import SanityThresholds

CHECKS = ("sanity", "passive", "flash", "active")


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    limits: ImageLimits
    log_level: str
    checks: frozenset[str]
    passive_model: PassiveSpec
    live_threshold: float | None  # None: the passive model's own threshold (from its .json spec)
    tflite_threads: int
    detect_max_side: int
    second_face_ratio: float
    allowed_actions: tuple[str, ...]
    min_challenge_actions: int
    max_challenge_actions: int
    nominal_fps: float
    challenge: ChallengeThresholds
    sanity: SanityThresholds
    flash: FlashThresholds
    planarity: PlanarityThresholds
    motion: MotionThresholds

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        checks = tuple(c.lower() for c in env_list("LIVENESS_CHECKS", CHECKS, env))
        unknown = sorted(set(checks) - set(CHECKS))
        if unknown:
            raise SettingsError(f"LIVENESS_CHECKS: unknown check(s) {unknown}; choose from {list(CHECKS)}")
        actions = tuple(a.upper() for a in env_list("LIVENESS_ALLOWED_ACTIONS", ACTIONS, env))
        bad_actions = sorted(set(actions) - set(ACTIONS))
        if bad_actions or not actions:
            raise SettingsError(f"LIVENESS_ALLOWED_ACTIONS: {bad_actions or 'empty'}; choose from {list(ACTIONS)}")
        threshold_text = env_str("LIVENESS_LIVE_THRESHOLD", "", env)
        threshold = (
            None if threshold_text == "" else env_float("LIVENESS_LIVE_THRESHOLD", 0.0, env, minimum=0.0, maximum=1.0)
        )
        if env_str("LIVENESS_MODEL_PATH", "", env):
            # Renamed when the passive model became a spec that may fuse several models: refuse rather than
            # silently run the default instead of the operator's model.
            raise SettingsError("LIVENESS_MODEL_PATH was replaced by LIVENESS_PASSIVE_MODEL (a spec name or path)")
        passive_value = env_str("LIVENESS_PASSIVE_MODEL", DEFAULT_PASSIVE, env)
        try:
            passive_model = PassiveSpec.load(resolve_spec(passive_value))
        except (ValueError, KeyError) as error:
            raise SettingsError(f"LIVENESS_PASSIVE_MODEL={passive_value!r}: {error}") from error
        max_actions = env_int("LIVENESS_MAX_CHALLENGE_ACTIONS", 4, env, minimum=0, maximum=4)
        return cls(
            server=ServerSettings.from_env("LIVENESS", "127.0.0.1:50051", "127.0.0.1:9101"),
            limits=ImageLimits(
                max_bytes=env_int(
                    "LIVENESS_MAX_IMAGE_BYTES", 2 * 1024 * 1024, env, minimum=1024, maximum=8 * 1024 * 1024
                ),
                max_pixels=env_int("LIVENESS_MAX_PIXELS", 4_000_000, env, minimum=10_000, maximum=40_000_000),
                max_frames=env_int("LIVENESS_MAX_FRAMES", 24, env, minimum=1, maximum=32),
            ),
            log_level=env_str("LOG_LEVEL", "INFO", env),
            checks=frozenset(checks),
            passive_model=passive_model,
            live_threshold=threshold,
            tflite_threads=env_int("LIVENESS_TFLITE_THREADS", 1, env, minimum=1, maximum=16),
            detect_max_side=env_int("LIVENESS_DETECT_MAX_SIDE", 320, env, minimum=80, maximum=4096),
            second_face_ratio=env_float("LIVENESS_SECOND_FACE_RATIO", 0.25, env, minimum=0.0, maximum=1.0),
            allowed_actions=actions,
            min_challenge_actions=env_int("LIVENESS_MIN_CHALLENGE_ACTIONS", 0, env, minimum=0, maximum=max_actions),
            max_challenge_actions=max_actions,
            nominal_fps=env_float("LIVENESS_NOMINAL_FPS", 10.0, env, minimum=0.5, maximum=120.0),
            challenge=ChallengeThresholds(
                blink_ratio=env_float("LIVENESS_BLINK_EAR_RATIO", 0.7, env, minimum=0.1, maximum=0.99),
                min_open_ear=env_float("LIVENESS_MIN_OPEN_EAR", 0.18, env, minimum=0.0, maximum=1.0),
                turn_degrees=env_float("LIVENESS_TURN_DEGREES", 15.0, env, minimum=1.0, maximum=80.0),
            ),
            sanity=SanityThresholds(
                min_frames=env_int("LIVENESS_MIN_FRAMES", 5, env, minimum=1, maximum=32),
                min_span_ms=env_float("LIVENESS_MIN_SPAN_MS", 600.0, env, minimum=0.0),
                max_faceless_fraction=env_float("LIVENESS_MAX_FACELESS_FRACTION", 0.2, env, minimum=0.0, maximum=1.0),
                max_track_jump=env_float("LIVENESS_MAX_TRACK_JUMP", 1.0, env, minimum=0.0),
                max_scale_change=env_float("LIVENESS_MAX_SCALE_CHANGE", 1.5, env, minimum=1.0),
                max_colour_change=env_float("LIVENESS_MAX_COLOUR_CHANGE", 0.34, env, minimum=0.0, maximum=1.0),
                static_difference=env_float("LIVENESS_STATIC_DIFFERENCE", 1.0, env, minimum=0.0, maximum=255.0),
                static_pair_fraction=env_float("LIVENESS_STATIC_PAIR_FRACTION", 0.8, env, minimum=0.0, maximum=1.0),
                timing_tolerance=env_float("LIVENESS_TIMING_TOLERANCE", 2.0, env, minimum=1.0, maximum=100.0),
                max_gap_intervals=env_float("LIVENESS_MAX_GAP_INTERVALS", 4.0, env, minimum=1.0, maximum=1000.0),
            ),
            planarity=PlanarityThresholds(
                max_residual=env_float("LIVENESS_PLANAR_MAX_RESIDUAL", 0.016, env, minimum=0.0, maximum=1.0),
                min_yaw_span=env_float("LIVENESS_PLANAR_MIN_YAW_SPAN", 0.0, env, minimum=0.0, maximum=90.0),
            ),
            motion=MotionThresholds(
                still_face=env_float("LIVENESS_STILL_FACE_CHANGE", 0.8, env, minimum=0.0, maximum=255.0),
                eye_change=env_float("LIVENESS_EYE_CHANGE", 3.0, env, minimum=0.0, maximum=255.0),
            ),
            flash=_flash_thresholds(env),
        )


def _flash_thresholds(env: Mapping[str, str] | None) -> FlashThresholds:
    lag_min = env_float("LIVENESS_FLASH_LAG_MIN_MS", 0.0, env, minimum=0.0, maximum=1000.0)
    lag_max = env_float("LIVENESS_FLASH_LAG_MAX_MS", 300.0, env, minimum=0.0, maximum=1000.0)
    if lag_max < lag_min:
        raise SettingsError(f"LIVENESS_FLASH_LAG_MAX_MS ({lag_max}) is below LIVENESS_FLASH_LAG_MIN_MS ({lag_min})")
    return FlashThresholds(
        threshold=env_float("LIVENESS_FLASH_THRESHOLD", 0.7, env, minimum=0.0, maximum=1.0),
        min_gain=env_float("LIVENESS_FLASH_MIN_GAIN", 0.02, env, minimum=0.0, maximum=1.0),
        max_background_ratio=env_float("LIVENESS_FLASH_MAX_BACKGROUND_RATIO", 0.5, env, minimum=0.0, maximum=1.0),
        min_edge_ratio=(
            env_float("LIVENESS_FLASH_MIN_EDGE_RATIO", 0.0, env, minimum=0.0, maximum=1.0)
            if env_str("LIVENESS_FLASH_MIN_EDGE_RATIO", "", env)
            else None
        ),
        lag_min_ms=lag_min,
        lag_max_ms=lag_max,
        lag_step_ms=env_float("LIVENESS_FLASH_LAG_STEP_MS", 20.0, env, minimum=1.0, maximum=200.0),
        min_steps=env_int("LIVENESS_FLASH_MIN_STEPS", 3, env, minimum=1, maximum=16),
        min_frames_per_step=env_int("LIVENESS_FLASH_MIN_FRAMES_PER_STEP", 2, env, minimum=1, maximum=16),
        background_scale=env_float("LIVENESS_FLASH_BACKGROUND_SCALE", 1.6, env, minimum=1.2, maximum=4.0),
    )
