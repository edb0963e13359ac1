"""Planarity of head turns, synthetic motion (painted blink, still + noise) and frame timing, on the real clips and on
injected stills made from them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from liveness_service.config import Settings
from liveness_service.faces import FaceAnalyzer
from liveness_service.landmarks import eye_aspect_ratio
from liveness_service.planarity import planarity_residual
from liveness_service.sanity import SanityThresholds, frame_timing_problem
from liveness_service.tools import injection, reflection
from liveness_service.verdict import LivenessEngine

TIMES_10_FPS = [round(i * 100 + (7 if i % 3 == 0 else 0)) for i in range(20)]


@pytest.fixture(scope="module")
def engine() -> LivenessEngine:
    """Sanity and the active checks alone (the flash and passive checks have their own tests)."""
    settings = Settings.from_env({"LIVENESS_CHECKS": "sanity,active"})
    return LivenessEngine(settings, FaceAnalyzer(), None)


@pytest.fixture(scope="module")
def window(video_dir, sample_capture):
    def sample(clip: str, start_ms: float):
        capture = sample_capture(video_dir / clip, fps=10.0, frames=20, start_ms=start_ms)
        return capture.rgb(), capture.times_ms

    return sample


def jpeg_round_trip(frames):
    return reflection.decode_jpeg(reflection.encode_jpeg(frames))


def test_a_real_head_turn_is_not_planar(engine, window):
    frames, times = window("liveportrait/d12.mp4", 2000)  # turns ~40 deg to the user's right
    verdict = engine.check(frames, ["TURN_RIGHT"], times)
    assert verdict.live, verdict.failed_checks
    assert verdict.planarity_residual is not None
    assert verdict.planarity_residual > 2 * engine.settings.planarity.max_residual


@pytest.mark.parametrize("degrees", [-30, 40])
@pytest.mark.parametrize("border", [cv2.BORDER_CONSTANT, cv2.BORDER_REFLECT])
@pytest.mark.parametrize("jitter", [False, True])
def test_a_photo_turned_like_a_head_is_planar_motion(engine, window, degrees, border, jitter):
    frames, _ = window("liveportrait/d9.mp4", 0)
    rng = np.random.default_rng(abs(degrees) + border)
    attack = jpeg_round_trip(injection.turned_photo(frames[0], degrees, rng, border=border, jitter=jitter))
    action = "TURN_LEFT" if degrees > 0 else "TURN_RIGHT"
    verdict = engine.check(attack, [action], TIMES_10_FPS)
    assert "PLANAR_MOTION" in verdict.failed_checks, (verdict.failed_checks, verdict.planarity_residual)
    assert verdict.planarity_residual <= engine.settings.planarity.max_residual


def test_the_turned_photo_would_pass_the_turn_without_the_planarity_check(engine, window):
    """The attack is real: the challenge alone is met; planarity is what refuses it."""
    frames, _ = window("liveportrait/d9.mp4", 0)
    attack = jpeg_round_trip(injection.turned_photo(frames[0], 40, np.random.default_rng(1)))
    verdict = engine.check(attack, ["TURN_LEFT"], TIMES_10_FPS)
    assert verdict.actions[0].performed and verdict.failed_checks == ["PLANAR_MOTION"], verdict.failed_checks


def test_planarity_needs_faces():
    assert planarity_residual([None, None, None], [None, None, None]) is None


@pytest.mark.parametrize("jitter", [False, True])
@pytest.mark.parametrize("noise", [2.0, 3.0])
def test_a_painted_blink_is_synthetic_motion(engine, window, jitter, noise):
    """d9's first frame with the closed eyes of its own blink (~0.4 s later) pasted in for four frames."""
    frames, _ = window("liveportrait/d9.mp4", 0)
    seen = [engine.analyzer.observe(f) for f in frames[:8]]
    closed = int(np.argmin([eye_aspect_ratio(s.landmarks) for s in seen]))
    rng = np.random.default_rng(2)
    donor = (frames[closed], seen[closed].landmarks)
    attack = injection.painted_blink(frames[0], seen[0].landmarks, rng, noise=noise, jitter=jitter, donor=donor)
    verdict = engine.check(jpeg_round_trip(attack), ["BLINK"], TIMES_10_FPS[:15])
    assert verdict.actions[0].performed  # the landmarks see the pasted eyes close: the challenge alone is met
    assert "SYNTHETIC_MOTION" in verdict.failed_checks, verdict.failed_checks


@pytest.mark.parametrize(("jitter", "noise"), [(False, 8.0), (True, 3.0)])
def test_a_still_with_noise_or_jitter_is_static(engine, window, jitter, noise):
    frames, _ = window("retalking/2.mp4", 0)
    rng = np.random.default_rng(3)
    still = [injection.jiggle(frames[0], rng) if jitter else frames[0] for _ in range(15)]
    attack = jpeg_round_trip([injection.add_noise(f, rng, noise) for f in still])
    verdict = engine.check(attack, [], TIMES_10_FPS[:15])
    # The noise (or jitter) defeats the raw grey difference of consecutive frames ...
    raw = [f.difference_to_previous for f in verdict.frames[1:]]
    assert sum(d >= engine.settings.sanity.static_difference for d in raw) > 0.2 * len(raw)
    # ... but not the aligned, low-passed comparison with the first frame.
    assert "STATIC_CAPTURE" in verdict.failed_checks, verdict.failed_checks


@pytest.mark.parametrize(
    ("clip", "start_ms", "actions"),
    [
        ("liveportrait/d9.mp4", 0, ["BLINK"]),
        ("liveportrait/d9.mp4", 12000, []),
        ("liveportrait/d18.mp4", 4500, []),
        ("retalking/2.mp4", 2500, []),
        ("liveportrait/d12.mp4", 4000, ["TURN_LEFT"]),
    ],
)
def test_real_clips_are_neither_static_synthetic_planar_nor_mistimed(engine, window, clip, start_ms, actions):
    frames, times = window(clip, start_ms)
    verdict = engine.check(frames, actions, times)
    assert verdict.live, (verdict.failed_checks, verdict.planarity_residual, verdict.timing_problem)


def test_frame_times_must_match_the_capture_rate():
    thresholds = SanityThresholds()
    assert frame_timing_problem(TIMES_10_FPS, 10.0, thresholds) == ""
    assert frame_timing_problem([], 10.0, thresholds) == ""  # none sent: the nominal rate is assumed
    assert frame_timing_problem([0, 10], 10.0, thresholds) == ""  # too few to judge
    # A clip's frames re-timed to fill a longer span (3 fps) or squeezed (40 fps).
    assert "median" in frame_timing_problem([i * 330 for i in range(20)], 10.0, thresholds)
    assert "median" in frame_timing_problem([i * 25 for i in range(20)], 10.0, thresholds)
    # Most frames sent with one time, the rest spread out to make the span.
    assert frame_timing_problem([0] * 15 + [400, 800, 1200, 1600, 2000], 10.0, thresholds)
    # Regular frames with one long pause in the middle (frames spliced from two takes).
    assert "gap" in frame_timing_problem(
        [i * 100 for i in range(10)] + [1400 + i * 100 for i in range(10)], 10.0, thresholds
    )


def test_mistimed_frames_are_refused_with_their_reason(engine, window):
    frames, times = window("liveportrait/d12.mp4", 4000)
    verdict = engine.check(frames, [], [t * 4 for t in times])
    assert not verdict.live and verdict.failed_checks == ["FRAME_TIMING"] and "median" in verdict.timing_problem
