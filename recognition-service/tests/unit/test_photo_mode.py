"""Photo mode (the dominant face of an imported photo) against the live rules, and faces that fill the frame
or are cut by its border. The composites are made at test time from the real photos in tests/data."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from faceauth_common.boxes import Box
from recognition_service.choice import PhotoSettings, centrality, choose_live, choose_photo
from recognition_service.engine import DetectionSettings, FaceStatus
from recognition_service.quality import QualitySettings
from recognition_service.verify import MatchSettings, VerifyReason, verify

ENROLL = DetectionSettings(max_side=800, upsample=0, retry_upsample=True)
LOGIN = DetectionSettings(max_side=400, upsample=0)
QUALITY = QualitySettings()
PHOTO = PhotoSettings()
MATCH = MatchSettings()


@pytest.fixture(scope="module")
def templates(engine, rgb):
    def embed(name):
        observation = engine.encode(rgb(name), ENROLL, QUALITY)
        assert observation.status is FaceStatus.OK, (name, observation.status)
        return observation.embedding

    return {name: embed(name) for name in ("obama", "obama2", "biden", "biden2")}


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def test_live_rules_refuse_a_photo_with_a_second_face_of_comparable_size(
    engine, obama_with_a_smaller_face_in_the_corner
):
    observation = engine.encode(obama_with_a_smaller_face_in_the_corner, ENROLL, QUALITY)
    assert observation.faces_found == 2
    assert observation.status is FaceStatus.MULTIPLE_FACES
    assert observation.embedding is None


def test_photo_mode_uses_the_dominant_face_and_it_is_the_subject(
    engine, obama_with_a_smaller_face_in_the_corner, templates
):
    observation = engine.encode(obama_with_a_smaller_face_in_the_corner, ENROLL, QUALITY, PHOTO)
    assert observation.status is FaceStatus.OK
    assert (observation.faces_found, observation.faces_ignored) == (2, 1)
    assert observation.box.top < obama_with_a_smaller_face_in_the_corner.shape[0] // 2  # the upper face
    assert distance(observation.embedding, templates["obama2"]) <= MATCH.threshold
    assert distance(observation.embedding, templates["biden"]) > MATCH.threshold
    assert distance(observation.embedding, templates["biden2"]) > MATCH.threshold


def test_photo_mode_refuses_when_the_second_face_is_as_prominent(engine, obama_with_a_smaller_face_in_the_corner):
    """The same composite is refused with a stricter dominance ratio: the choice is the ratio's, not luck."""
    strict = replace(PHOTO, dominant_ratio=0.3)
    assert engine.observe(obama_with_a_smaller_face_in_the_corner, ENROLL, QUALITY, strict).status is (
        FaceStatus.MULTIPLE_FACES
    )


@pytest.mark.parametrize("name", ["two_people", "obama_and_biden", "selfie_many", "couple"])
def test_photo_mode_still_refuses_group_photos(engine, rgb, name):
    observation = engine.encode(rgb(name), ENROLL, QUALITY, PHOTO)
    assert observation.status is FaceStatus.MULTIPLE_FACES
    assert observation.faces_found >= 2
    assert observation.embedding is None


def test_photo_mode_ignores_an_out_of_focus_face_of_the_same_size(engine, rgb, templates, face_patch, paste):
    """Two faces side by side at the same size, Biden's blurred (a background person out of focus): live
    refuses, photo mode takes the sharp one; the same composite with both sharp is refused by both."""
    canvas = np.full((700, 1400, 3), 120, dtype=np.uint8)
    obama = face_patch(rgb("obama"), 220)
    biden = face_patch(rgb("biden"), 220)
    sharp_pair = paste(paste(canvas, obama, 350, 350), biden, 1050, 350)
    blurred = cv2.GaussianBlur(biden, (0, 0), 4.0)
    blurred_pair = paste(paste(canvas, obama, 350, 350), blurred, 1050, 350)

    assert engine.observe(sharp_pair, ENROLL, QUALITY).status is FaceStatus.MULTIPLE_FACES
    assert engine.observe(sharp_pair, ENROLL, QUALITY, PHOTO).status is FaceStatus.MULTIPLE_FACES
    assert engine.observe(blurred_pair, ENROLL, QUALITY).status is FaceStatus.MULTIPLE_FACES
    observation = engine.encode(blurred_pair, ENROLL, QUALITY, PHOTO)
    assert observation.faces_found == 2, "the blurred face must still be detected for the test to mean anything"
    assert observation.status is FaceStatus.OK
    assert observation.box.right < 700
    assert distance(observation.embedding, templates["obama2"]) <= MATCH.threshold


def test_photo_mode_accepts_a_small_face_the_live_rules_refuse(engine, rgb, templates):
    """obama-240p's face is 73 px wide: FACE_TOO_SMALL live (80), usable in a photo (40)."""
    image = rgb("obama_240p")
    assert engine.encode(image, ENROLL, QUALITY).status is FaceStatus.FACE_TOO_SMALL
    observation = engine.encode(image, ENROLL, QUALITY, PHOTO)
    assert observation.status is FaceStatus.OK
    assert distance(observation.embedding, templates["obama"]) <= MATCH.threshold


def test_photo_mode_finds_a_small_face_by_upsampling(engine, rgb, templates):
    """A 48 px face is below HOG's ~80 px window: found only by the upsampled retries of photo mode."""
    image = rgb("obama")
    box = engine.detect(image, ENROLL)[0][0]
    scale = 48 / box.width
    small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), cv2.INTER_AREA)
    assert engine.observe(small, replace(ENROLL, retry_upsample=False), QUALITY).status is FaceStatus.NO_FACE
    observation = engine.encode(small, replace(ENROLL, retry_upsample=False), QUALITY, PHOTO)
    assert observation.status is FaceStatus.OK
    assert distance(observation.embedding, templates["obama2"]) <= MATCH.threshold


def test_photo_mode_refuses_what_cannot_give_a_template_with_the_reason(engine, rgb):
    image = rgb("obama")
    box = engine.detect(image, ENROLL)[0][0]
    below_face = np.ascontiguousarray(image[box.bottom + 40 :])
    assert engine.encode(below_face, ENROLL, QUALITY, PHOTO).status is FaceStatus.NO_FACE
    tiny = cv2.resize(image, None, fx=30 / box.width, fy=30 / box.width, interpolation=cv2.INTER_AREA)
    found = engine.observe(tiny, ENROLL, QUALITY, PHOTO)
    assert found.status is FaceStatus.FACE_TOO_SMALL and found.box.width < PHOTO.min_face_px
    dark = np.clip(image.astype(np.float32) * 0.06, 0, 255).astype(np.uint8)
    observation = engine.observe(dark, ENROLL, QUALITY, PHOTO)
    assert observation.status is FaceStatus.TOO_DARK and observation.brightness < PHOTO.min_brightness
    blurred = engine.observe(cv2.GaussianBlur(image, (0, 0), 8.0), ENROLL, QUALITY, PHOTO)
    assert blurred.status is FaceStatus.TOO_BLURRY and blurred.sharpness < PHOTO.min_sharpness
    # The same faces with the limits below their measurements are encoded: the limits decide, not detection.
    assert engine.observe(tiny, ENROLL, QUALITY, replace(PHOTO, min_face_px=20)).status is FaceStatus.OK
    lenient = replace(PHOTO, min_brightness=0.0, min_sharpness=0.0)
    assert engine.observe(dark, ENROLL, QUALITY, lenient).status is FaceStatus.OK


# -- faces that fill the frame or are cut by the border ---------------------------------------------------


def test_a_face_inside_the_image_is_landmarked_in_the_same_box_as_before(engine, rgb):
    """The unclipped detector box changes nothing for faces inside the image: the landmark predictor gets
    the box's exclusive right/bottom as before, so embeddings (and every measured distance) stay put."""
    observation = engine.observe(rgb("obama2"), ENROLL, QUALITY)
    box, rect = observation.box, observation.landmarks.rect
    assert box.left > 0 and box.right < rgb("obama2").shape[1]
    assert (rect.left(), rect.top(), rect.right(), rect.bottom()) == (box.left, box.top, box.right, box.bottom)


def close_frame(image: np.ndarray, box: Box, shift: int = 0) -> np.ndarray:
    """A 640x480 frame showing 60 % of the face box's height and 80 % of its width (the user leaned in)."""
    centre_x, centre_y = box.centre
    height = 0.6 * box.height
    width = height * 4 / 3
    left, top = round(centre_x + shift - width / 2), round(centre_y - height / 2)
    crop = image[top : top + round(height), left : left + round(width)]
    return cv2.resize(crop, (640, 480), interpolation=cv2.INTER_AREA)


def test_a_face_filling_the_frame_is_found_thanks_to_the_padding(engine, rgb, templates):
    image = rgb("obama")
    box = engine.detect(image, ENROLL)[0][0]
    close = close_frame(image, box)
    no_upsampling = replace(ENROLL, retry_upsample=False)
    assert engine.observe(close, replace(no_upsampling, pad_fraction=0.0), QUALITY).status is FaceStatus.NO_FACE
    observation = engine.encode(close, no_upsampling, QUALITY)
    assert observation.status is FaceStatus.OK
    assert distance(observation.embedding, templates["obama2"]) <= MATCH.threshold


def test_a_face_cut_by_the_border_is_encoded_with_its_full_box(engine, rgb, templates):
    """A third of the face is outside the left edge: the box reported is clipped to the image, the
    landmarks use the detector's full box (past the edge), and the embedding still matches."""
    image = rgb("obama")
    box = engine.detect(image, ENROLL)[0][0]
    cut = np.ascontiguousarray(
        image[max(0, box.top - 150) : box.bottom + 150, box.left + box.width // 3 : box.right + 300]
    )
    observation = engine.encode(cut, ENROLL, QUALITY)
    assert observation.status is FaceStatus.OK
    assert observation.box.left == 0
    assert min(p.x for p in observation.landmarks.parts()) >= -box.width  # sane landmarks
    assert distance(observation.embedding, templates["obama2"]) <= MATCH.threshold


def test_login_frames_of_a_very_close_face_verify(engine, rgb, jpeg, templates):
    """640x480 login frames in which the face fills the frame (the user leaned in) match the enrolled
    templates through the normal Verify path; without the padding the frames have no face."""
    image = rgb("obama")
    box = engine.detect(image, ENROLL)[0][0]
    frames = [close_frame(image, box, shift) for shift in (0, 8, 16, 24)]
    stored = np.stack([templates["obama"], templates["obama2"]])
    result = verify(engine, frames, stored, LOGIN, QUALITY, MATCH)
    assert result.reason is VerifyReason.MATCH, [f.observation.status for f in result.frames]
    unpadded = verify(engine, frames, stored, replace(LOGIN, pad_fraction=0.0), QUALITY, MATCH)
    assert unpadded.reason is VerifyReason.NOT_ENOUGH_FACES


# -- the choice rules on boxes ---------------------------------------------------------------------------


def test_centrality_is_one_at_the_centre_and_one_half_in_the_corner():
    assert centrality(Box(40, 40, 60, 60), 100, 100) == pytest.approx(1.0)
    assert centrality(Box(-10, -10, 10, 10), 100, 100) == pytest.approx(0.5)


def test_live_choice_is_the_largest_face_and_refuses_comparable_ones():
    boxes = [Box(0, 0, 50, 50), Box(100, 100, 200, 200)]
    assert choose_live(boxes, 0.4).index == 1
    assert choose_live(boxes, 0.4).ambiguous is False  # 0.25 of the area
    assert choose_live(boxes, 0.2).ambiguous is True


def test_photo_choice_weighs_size_by_centrality_and_ignores_blurred_faces():
    width = height = 1000
    central = Box(400, 400, 600, 600)  # area 40000, centrality 1
    corner = Box(0, 0, 200, 200)  # the same area, centrality 0.6: prominence 0.6 of the central face's
    assert choose_photo([central, corner], [100.0, 100.0], width, height, PHOTO).ambiguous is True
    relaxed = choose_photo([central, corner], [100.0, 100.0], width, height, replace(PHOTO, dominant_ratio=0.7))
    assert (relaxed.index, relaxed.ambiguous, relaxed.ignored) == (0, False, 1)
    blurred_corner = choose_photo([central, corner], [100.0, 5.0], width, height, PHOTO)
    assert (blurred_corner.index, blurred_corner.ambiguous, blurred_corner.ignored) == (0, False, 1)
    # The sharp face is chosen even when the blurred one is larger.
    big_blurred = Box(0, 0, 400, 400)
    chosen = choose_photo([big_blurred, central], [5.0, 100.0], width, height, PHOTO)
    assert (chosen.index, chosen.ambiguous) == (1, False)
    with pytest.raises(ValueError):
        choose_photo([], [], width, height, PHOTO)
