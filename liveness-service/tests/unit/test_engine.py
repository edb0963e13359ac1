"""The liveness domain on real videos (tests/data; real dlib and TFLite models; no server).

How well the passive model refuses real print and replay attacks is not measured here (the repository may not ship
such images): bench/liveness_accuracy.py measures it on the team's data set against the model card."""

from __future__ import annotations

import numpy as np
import pytest

from liveness_service.config import Settings
from liveness_service.faces import FaceAnalyzer, crop_with_context
from liveness_service.flash import FlashStep
from liveness_service.landmarks import head_yaw_degrees
from liveness_service.passive import DEFAULT_MODEL, ModelSpec, TFLiteScorer
from liveness_service.tools import minifasnet
from liveness_service.verdict import InvalidRequest, LivenessEngine

# A sequence for tests about other checks (the frames are not lit by it: those verdicts also fail the flash check).
UNLIT = [FlashStep(0xFF0000, 400), FlashStep(0x00FF00, 400), FlashStep(0x0000FF, 400), FlashStep(0xFFFF00, 400)]


@pytest.fixture(scope="module")
def engine() -> LivenessEngine:
    return LivenessEngine.load(Settings.from_env({}))


@pytest.fixture(scope="module")
def passive_only() -> LivenessEngine:
    return LivenessEngine.load(Settings.from_env({"LIVENESS_CHECKS": "passive"}))


def test_d9_frames_pass_a_blink_challenge(engine, d9_flashed):
    capture = d9_flashed
    verdict = engine.check(capture.rgb(), ["BLINK"], capture.times_ms, flash=capture.flash, flash_start_ms=-50)
    assert verdict.live, (verdict.failed_checks, verdict.flash)
    assert verdict.flash is not None and verdict.flash.reflected
    assert verdict.reason == "LIVE" and verdict.failed_checks == []
    [blink] = verdict.actions
    assert blink.performed and 1 <= blink.frame_index <= 5  # the eyes close ~0.33-0.6 s into the clip
    assert all(f.face_count == 1 for f in verdict.frames)
    assert verdict.live_score is not None and verdict.live_score >= verdict.live_threshold


def test_the_same_frames_fail_a_turn_left_challenge(engine, d9_flashed):
    flash = {"flash": d9_flashed.flash, "flash_start_ms": d9_flashed.flash_start_ms}
    verdict = engine.check(d9_flashed.rgb(), ["TURN_LEFT"], d9_flashed.times_ms, **flash)
    assert not verdict.live
    assert verdict.reason == "CHALLENGE_NOT_MET" and verdict.failed_checks == ["CHALLENGE_NOT_MET"]
    assert not verdict.actions[0].performed and verdict.actions[0].frame_index == -1
    # In order: the blink happens, but a turn after it does not.
    both = engine.check(d9_flashed.rgb(), ["BLINK", "TURN_LEFT"], d9_flashed.times_ms, **flash)
    assert [a.performed for a in both.actions] == [True, False]


def test_d12_turns_to_its_own_right_not_left(engine, video_dir, sample_capture):
    capture = sample_capture(video_dir / "liveportrait" / "d12.mp4", fps=6.0, frames=10, start_ms=2000)
    right = engine.check(capture.rgb(), ["TURN_RIGHT"], capture.times_ms, flash=UNLIT)
    left = engine.check(capture.rgb(), ["TURN_LEFT"], capture.times_ms, flash=UNLIT)
    assert right.actions[0].performed, [f.yaw_degrees for f in right.frames]
    assert not left.actions[0].performed


def test_yaw_changes_sign_in_a_mirrored_frame(video_dir, sample_capture):
    capture = sample_capture(video_dir / "liveportrait" / "d12.mp4", fps=6.0, frames=10, start_ms=2000)
    analyzer = FaceAnalyzer()
    yaws = []
    for image in capture.rgb():
        for frame in (image, np.ascontiguousarray(image[:, ::-1])):
            seen = analyzer.observe(frame)
            yaws.append(head_yaw_degrees(seen.landmarks, frame.shape[1], frame.shape[0]))
    pairs = list(zip(yaws[::2], yaws[1::2], strict=True))
    turned = [(a, b) for a, b in pairs if abs(a) > 12]
    assert turned, pairs
    for original, mirrored in turned:
        # The sign flips; the magnitudes differ somewhat (dlib's landmarks are not mirror-symmetric on turned faces).
        assert np.sign(original) == -np.sign(mirrored)
        assert abs(mirrored) > 5


def test_one_frame_repeated_is_a_static_capture(engine, d9_capture):
    frame = d9_capture.rgb()[0]
    verdict = engine.check([frame.copy() for _ in range(10)], [], [i * 167 for i in range(10)], flash=UNLIT)
    assert not verdict.live
    assert verdict.failed_checks[0] == "STATIC_CAPTURE"
    assert all(f.difference_to_previous == 0.0 for f in verdict.frames[1:])


@pytest.mark.parametrize("other", ["retalking/2.mp4", "liveportrait/d18.mp4"])
def test_frames_spliced_from_two_videos_break_the_track(engine, d9_capture, video_dir, sample_capture, other):
    second = sample_capture(video_dir / other, fps=6.0, frames=5)
    frames = d9_capture.rgb()[:5] + second.rgb()
    verdict = engine.check(frames, [], [i * 167 for i in range(10)], flash=UNLIT)
    assert not verdict.live
    assert "TRACK_DISCONTINUOUS" in verdict.failed_checks
    assert verdict.reason == "TRACK_DISCONTINUOUS"
    # Within each clip the track is continuous: only the splice exceeds the limit.
    changes = [f.colour_change_to_previous for f in verdict.frames]
    limit = engine.settings.sanity.max_colour_change
    assert [i for i, c in enumerate(changes) if c is not None and c > limit] in ([5], [])


def test_a_short_or_faceless_capture_has_its_own_reasons(engine, d9_capture):
    frames = d9_capture.rgb()
    few = engine.check(frames[:3], [], [0, 167, 334], flash=UNLIT)
    assert few.failed_checks[:2] == ["TOO_FEW_FRAMES", "CAPTURE_TOO_SHORT"]
    grey = [np.full((480, 640, 3), 100 + i, np.uint8) for i in range(8)]
    faceless = engine.check(grey, [], [], flash=UNLIT)
    assert faceless.reason == "NO_FACE" and faceless.live_score is None


def test_bad_requests_are_refused(engine, d9_capture):
    frames = d9_capture.rgb()
    with pytest.raises(InvalidRequest, match="frame_times_ms"):
        engine.check(frames, [], [0, 1])
    with pytest.raises(InvalidRequest, match="non-decreasing"):
        engine.check(frames, [], [0, 10, 5, 20, 30, 40, 50, 60, 70, 80])
    with pytest.raises(InvalidRequest, match="limit is 4"):
        engine.check(frames, ["BLINK"] * 5, [])
    restricted = LivenessEngine(
        Settings.from_env({"LIVENESS_ALLOWED_ACTIONS": "BLINK"}), engine.analyzer, engine.passive
    )
    with pytest.raises(InvalidRequest, match="not allowed"):
        restricted.check(frames, ["TURN_LEFT"], [])
    with pytest.raises(InvalidRequest, match="no flash sequence"):
        engine.check(frames, [], [])
    with pytest.raises(InvalidRequest, match="duration_ms"):
        engine.check(frames, [], [], flash=[FlashStep(0xFF0000, 0)])
    with pytest.raises(InvalidRequest, match="limit is 16"):
        engine.check(frames, [], [], flash=UNLIT * 5)


def test_passive_only_skips_the_challenge_and_sanity(passive_only, d9_capture):
    frame = d9_capture.rgb()[0]
    verdict = passive_only.check([frame] * 2, ["TURN_LEFT"], [])
    assert verdict.live and verdict.actions == []


SILENT_FACE_WEIGHTS = "weights/silent_face/2.7_80x80_MiniFASNetV2.weights.npz"


def test_the_shipped_tflite_file_is_the_port_of_the_published_weights(test_data, d9_capture, recaptured):
    """The shipped TFLite model computes what our Keras port of Minivision's published weights computes, on face
    crops from a licensed clip and recaptured copies of it. That the Keras port matches the original PyTorch outputs
    was measured when the model was built (MODEL_CARD.md); bench/liveness_accuracy.py re-measures it on the
    original reference crops, which may not be copied into the repository (they show NUAA and seed images)."""
    spec = ModelSpec.for_model(DEFAULT_MODEL)
    analyzer = FaceAnalyzer()
    crops = []
    for rgb in d9_capture.rgb()[:4]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        box = analyzer.detect(rgb)[0]
        for image in (bgr, recaptured(bgr)):
            crops.append(crop_with_context(image, box, spec.box_scale, spec.input_size))
    batch = np.stack(crops)
    weights = dict(np.load(test_data / SILENT_FACE_WEIGHTS))
    port = minifasnet.live_probability_model(minifasnet.build_minifasnet_v2(weights, spec.input_size))
    expected = port(batch.astype(np.float32), training=False).numpy()
    np.testing.assert_allclose(TFLiteScorer(DEFAULT_MODEL).score(batch), expected, atol=1e-4)
