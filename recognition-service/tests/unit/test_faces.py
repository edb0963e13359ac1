"""The recognition domain on real photos, without a server."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceauth_common.boxes import Box
from recognition_service.engine import EMBEDDING_SIZE, DeadlineExceeded, DetectionSettings, FaceStatus, Observation
from recognition_service.quality import QualitySettings
from recognition_service.verify import (
    MatchSettings,
    SamePerson,
    VerifyReason,
    embedding_order,
    parse_templates,
    same_person,
    spread_runs,
    verify,
)

ENROLL = DetectionSettings(max_side=800, upsample=0, retry_upsample=True)
LOGIN = DetectionSettings(max_side=400, upsample=0)
QUALITY = QualitySettings()
MATCH = MatchSettings()


@pytest.fixture(scope="module")
def embeddings(engine, rgb):
    def embed(name):
        observation = engine.encode(rgb(name), ENROLL, QUALITY)
        assert observation.status is FaceStatus.OK, (name, observation.status)
        return observation.embedding

    return {name: embed(name) for name in ("obama", "obama2", "obama3", "biden", "biden2", "rose")}


def iou(a: Box, b: Box) -> float:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right, bottom = min(a.right, b.right), min(a.bottom, b.bottom)
    inter = max(0, right - left) * max(0, bottom - top)
    return inter / (a.area + b.area - inter)


def test_encode_returns_a_finite_128d_embedding_and_box_inside_the_image(engine, rgb):
    image = rgb("obama")
    observation = engine.encode(image, ENROLL, QUALITY)
    assert observation.status is FaceStatus.OK
    assert observation.embedding.shape == (EMBEDDING_SIZE,)
    assert np.all(np.isfinite(observation.embedding))
    box = observation.box
    assert 0 <= box.left < box.right <= image.shape[1] and 0 <= box.top < box.bottom <= image.shape[0]
    assert observation.detection_score > 0
    assert 0.5 < observation.quality <= 1.0


def test_same_person_in_different_photos_is_within_threshold_and_different_people_are_not(embeddings):
    def distance(a, b):
        return float(np.linalg.norm(embeddings[a] - embeddings[b]))

    for a, b in [("obama", "obama2"), ("obama", "obama3"), ("obama2", "obama3"), ("biden", "biden2")]:
        assert distance(a, b) <= MATCH.threshold, (a, b, distance(a, b))
    for a, b in [("obama", "biden"), ("obama", "rose"), ("biden", "rose"), ("obama2", "biden2")]:
        assert distance(a, b) > MATCH.threshold, (a, b, distance(a, b))


def test_boxes_found_on_a_downscaled_frame_are_mapped_back_to_original_pixels(engine, rgb):
    image = rgb("obama")
    full = engine.detect(image, DetectionSettings(max_side=4096))[0][0]
    small = engine.detect(image, DetectionSettings(max_side=400))[0][0]
    assert iou(full, small) > 0.75, (full, small)


@pytest.mark.parametrize("name", ["two_people", "obama_and_biden", "selfie_many", "couple"])
def test_group_photo_is_rejected_as_multiple_faces(engine, rgb, name):
    observation = engine.encode(rgb(name), ENROLL, QUALITY)
    assert observation.status is FaceStatus.MULTIPLE_FACES
    assert observation.faces_found >= 2
    assert observation.embedding is None


def test_a_small_background_face_does_not_count_as_a_second_person(engine, rgb):
    """The same group photo is accepted when a second face is far smaller than the chosen one."""
    observation = engine.observe(rgb("two_people"), ENROLL, QualitySettings(multiple_face_ratio=1.01))
    assert observation.status is FaceStatus.OK


def test_real_image_region_without_a_face_is_no_face(engine, rgb):
    image = rgb("obama")
    box = engine.detect(image, ENROLL)[0][0]
    below_face = np.ascontiguousarray(image[box.bottom + 40 :])  # suit and background
    assert engine.encode(below_face, ENROLL, QUALITY).status is FaceStatus.NO_FACE


def test_face_below_the_minimum_size_is_too_small(engine, rgb):
    observation = engine.encode(rgb("obama_240p"), ENROLL, QUALITY)
    assert observation.status is FaceStatus.FACE_TOO_SMALL
    assert observation.box.width < QUALITY.min_face_px


def test_blurred_face_is_too_blurry(engine, rgb):
    blurred = cv2.GaussianBlur(rgb("obama"), (0, 0), 6)
    observation = engine.encode(blurred, ENROLL, QUALITY)
    assert observation.status is FaceStatus.TOO_BLURRY
    assert observation.sharpness < QUALITY.min_sharpness


def test_underexposed_face_is_too_dark(engine, webcam_frame):
    dark = (webcam_frame("obama").astype(np.float32) * 0.2).astype(np.uint8)
    observation = engine.encode(dark, LOGIN, QUALITY)
    assert observation.status is FaceStatus.TOO_DARK
    assert observation.brightness < QUALITY.min_brightness


def test_frontal_face_scores_higher_quality_than_a_rotated_one(engine, webcam_frame):
    frame = webcam_frame("obama")
    rotation = cv2.getRotationMatrix2D((320, 240), 25, 1.0)
    tilted = cv2.warpAffine(frame, rotation, (640, 480), borderMode=cv2.BORDER_REFLECT)
    upright = engine.observe(frame, ENROLL, QUALITY)
    rolled = engine.observe(tilted, DetectionSettings(max_side=640, upsample=1), QUALITY)
    assert upright.status is FaceStatus.OK
    if rolled.status is FaceStatus.OK:  # HOG may not find a strongly rolled face at all
        assert rolled.quality < upright.quality


# -- verification ------------------------------------------------------------------------------------


def test_login_frames_of_the_enrolled_person_match(engine, webcam_frame, embeddings):
    frames = [webcam_frame(name, shift) for name in ("obama2", "obama3", "obama_knn") for shift in (0, 8)]
    result = verify(engine, frames, np.stack([embeddings["obama"]]), LOGIN, QUALITY, MATCH)
    assert result.match and result.reason is VerifyReason.MATCH
    assert result.matched_frames >= MATCH.min_matched_frames
    # Early stop: the decision was made after the minimum number of matching embeddings.
    assert result.compared_frames == MATCH.min_matched_frames
    compared = [f for f in result.frames if f.compared]
    assert all(0 <= f.distance <= MATCH.threshold and f.matched for f in compared)
    assert all(f.distance is None for f in result.frames if not f.compared)


def test_same_person_is_judged_with_the_verify_threshold(embeddings):
    assert same_person([embeddings["obama"]], MATCH) == SamePerson(True, None)
    one = same_person([embeddings["obama"], embeddings["obama2"]], MATCH)
    assert one.same_person and one.max_intra_distance is not None and one.max_intra_distance <= MATCH.max_intra_distance
    mixed = same_person([embeddings["obama"], embeddings["obama2"], embeddings["biden"]], MATCH)
    assert not mixed.same_person and mixed.max_intra_distance > MATCH.max_intra_distance


def test_login_frames_of_another_person_do_not_match(engine, webcam_frame, embeddings):
    frames = [webcam_frame("biden", shift) for shift in (0, 6, 12, 18)]
    result = verify(engine, frames, np.stack([embeddings["obama"], embeddings["obama2"]]), LOGIN, QUALITY, MATCH)
    assert not result.match and result.reason is VerifyReason.NO_MATCH
    assert result.matched_frames == 0
    assert all(f.distance is not None and f.distance > MATCH.threshold for f in result.frames if f.compared)


def test_frames_of_two_people_fail_as_inconsistent_even_if_each_matches_a_template(engine, webcam_frame, embeddings):
    frames = [webcam_frame("obama2", s) for s in (0, 5, 10)] + [webcam_frame("biden2", s) for s in (0, 5, 10)]
    templates = np.stack([embeddings["obama"], embeddings["biden"]])
    for settings in (
        MATCH,
        MatchSettings(observe_all=True),
        MatchSettings(max_embeddings=0, early_stop=False, observe_all=True),
    ):
        result = verify(engine, frames, templates, LOGIN, QUALITY, settings)
        assert not result.match
        assert result.reason is VerifyReason.INCONSISTENT_IDENTITY
        assert result.max_intra_distance > settings.max_intra_distance
        assert all(f.matched for f in result.frames if f.compared)  # each frame alone matches a template


def test_without_early_stop_every_usable_frame_is_compared(engine, webcam_frame, embeddings):
    frames = [webcam_frame("obama2", s) for s in (0, 5, 10, 15)]
    settings = MatchSettings(max_embeddings=0, early_stop=False)
    result = verify(engine, frames, np.stack([embeddings["obama"]]), LOGIN, QUALITY, settings)
    assert result.match and result.compared_frames == 4 and result.matched_frames == 4
    assert result.max_intra_distance < settings.max_intra_distance


def test_too_few_usable_faces_is_not_enough_faces(engine, webcam_frame, rgb, embeddings):
    image = rgb("obama")
    no_face = cv2.resize(np.ascontiguousarray(image[engine.detect(image, ENROLL)[0][0].bottom + 40 :]), (640, 480))
    frames = [webcam_frame("obama2"), no_face, no_face]
    for settings, compared in ((MATCH, 1), (MatchSettings(observe_all=True), 0)):
        result = verify(engine, frames, np.stack([embeddings["obama"]]), LOGIN, QUALITY, settings)
        assert not result.match and result.reason is VerifyReason.NOT_ENOUGH_FACES
        statuses = [f.observation.status for f in result.frames]
        assert statuses == [FaceStatus.OK, FaceStatus.NO_FACE, FaceStatus.NO_FACE]
        assert result.compared_frames == compared


def test_by_default_frames_the_decision_does_not_need_are_not_examined(engine, webcam_frame, embeddings):
    frames = [webcam_frame(name, shift) for name in ("obama2", "obama3") for shift in (0, 4, 8, 12)]
    templates = np.stack([embeddings["obama"]])
    lazy = verify(engine, frames, templates, LOGIN, QUALITY, MATCH)
    assert lazy.match and lazy.compared_frames == 2
    statuses = [f.observation.status for f in lazy.frames]
    assert statuses[0] is FaceStatus.OK and statuses[-1] is FaceStatus.OK  # first and last run: whole capture
    assert statuses.count(FaceStatus.NOT_EXAMINED) == 6
    full = verify(engine, frames, templates, LOGIN, QUALITY, MatchSettings(observe_all=True))
    assert full.match and full.compared_frames == 2
    assert all(f.observation.status is FaceStatus.OK for f in full.frames)


def test_deadline_check_aborts_between_frames(engine, webcam_frame, embeddings):
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 2:
            raise DeadlineExceeded

    frames = [webcam_frame("obama2", s) for s in (0, 5, 10, 15)]
    with pytest.raises(DeadlineExceeded):
        verify(engine, frames, np.stack([embeddings["obama"]]), LOGIN, QUALITY, MATCH, check)
    assert len(calls) == 3


def _observation(status: FaceStatus, quality: float) -> Observation:
    return Observation(status, quality=quality)


def test_spread_runs_try_the_first_and_last_frames_first():
    assert spread_runs(8, 4) == [[0, 1], [7, 6], [2, 3], [4, 5]]
    assert spread_runs(3, 4) == [[0], [2], [1]]
    assert spread_runs(3, 0) == [[0], [2], [1]]
    assert spread_runs(1, 4) == [[0]]
    assert spread_runs(0, 4) == []


def test_embedding_order_spreads_over_the_capture_and_prefers_quality():
    ok, bad = FaceStatus.OK, FaceStatus.NO_FACE
    frames = [_observation(s, q) for s, q in [(ok, 0.5), (ok, 0.9), (bad, 0), (ok, 0.6), (ok, 0.7), (ok, 0.95)]]
    # Usable frames 0,1,3,4,5 in 2 runs: [0,1,3] -> 1 (0.9), [4,5] -> 5 (0.95); first and last run first.
    assert embedding_order(frames, 2) == [1, 5]
    order = embedding_order(frames, 3)
    assert order[:2] == [1, 5] and len(order) == 3
    assert sorted(embedding_order(frames, 0)) == [0, 1, 3, 4, 5]
    assert embedding_order([_observation(bad, 0)], 4) == []


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        ([], "no templates"),
        ([[0.1] * 127], "127 values, expected 128"),
        ([[0.1] * 128, [0.1] * 129], "template 1 has 129 values"),
        ([[0.1] * 127 + [float("nan")]], "NaN or infinite"),
        ([[0.1] * 128, [float("inf")] * 128], "template 1 contains NaN"),
        ([[0.1] * 128] * 5, "limit is 4"),
    ],
)
def test_bad_templates_are_refused_with_a_clear_message(vectors, message):
    with pytest.raises(ValueError, match=message):
        parse_templates(vectors, max_templates=4)


def test_good_templates_parse_to_an_array():
    array = parse_templates([[0.0] * 128, [1.0] * 128], max_templates=4)
    assert array.shape == (2, 128)


def test_cnn_detector_option_finds_the_same_face(engine, webcam_frame):
    from recognition_service.engine import FaceEngine

    frame = webcam_frame("obama2")
    (cnn_box, cnn_score), *_ = FaceEngine(detector="cnn").detect(frame, DetectionSettings(max_side=200))
    (hog_box, _), *_ = engine.detect(frame, DetectionSettings(max_side=400))
    assert cnn_score > 0
    assert iou(cnn_box, hog_box) > 0.4, (cnn_box, hog_box)
