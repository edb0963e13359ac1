"""Shared fixtures of the recognition tests: real photos, the loaded engine, webcam-like frames."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from recognition_service.engine import DetectionSettings, FaceEngine
from recognition_service.quality import QualitySettings
from recognition_service.tools.images import load_image_file

# Real photos (face_recognition examples, MIT repo; deepface test set, MIT repo) in tests/data/faces.
PHOTOS = {
    "obama": "face_recognition_examples/examples/obama.jpg",
    "obama2": "face_recognition_examples/examples/obama2.jpg",
    "obama3": "face_recognition_examples/tests/test_images/obama3.jpg",
    "obama_knn": "face_recognition_examples/examples/knn_examples/test/obama1.jpg",
    "obama_240p": "face_recognition_examples/examples/obama-240p.jpg",
    "biden": "face_recognition_examples/examples/biden.jpg",
    "biden2": "face_recognition_examples/examples/knn_examples/train/biden/biden2.jpg",
    "rose": "face_recognition_examples/examples/knn_examples/train/rose_leslie/img1.jpg",
    "two_people": "face_recognition_examples/examples/two_people.jpg",
    "obama_and_biden": "face_recognition_examples/examples/knn_examples/test/obama_and_biden.jpg",
    "selfie_many": "deepface_testset/selfie-many-people.jpg",
    "couple": "deepface_testset/couple.jpg",
}

ENROLL = DetectionSettings(max_side=800, upsample=0, retry_upsample=True)
QUALITY = QualitySettings()


@pytest.fixture(scope="session")
def photos(test_data: Path) -> dict[str, Path]:
    paths = {name: test_data / "faces" / relative for name, relative in PHOTOS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.fail(f"test photos missing: {missing}")
    return paths


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    return FaceEngine.load()


@pytest.fixture(scope="session")
def rgb(photos: dict[str, Path]) -> Callable[[str], np.ndarray]:
    cache: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = load_image_file(photos[name])
        return cache[name]

    return load


@pytest.fixture(scope="session")
def webcam_frame(engine: FaceEngine, rgb: Callable[[str], np.ndarray]) -> Callable[..., np.ndarray]:
    """A 640x480 frame cut from a photo around its largest face, the way a login capture frames it
    (face about 45% of the width), optionally shifted by a few pixels to vary frames."""
    cache: dict[tuple[str, int], np.ndarray] = {}

    def make(name: str, shift: int = 0) -> np.ndarray:
        if (name, shift) in cache:
            return cache[(name, shift)]
        image = rgb(name)
        faces = engine.detect(image, ENROLL)
        assert faces, f"no face in {name}"
        box = faces[0][0]
        width = min(image.shape[1], round(box.width / 0.45))
        height = min(image.shape[0], round(width * 3 / 4))
        width = round(height * 4 / 3)
        centre_x = (box.left + box.right) // 2 + shift
        centre_y = (box.top + box.bottom) // 2
        left = int(np.clip(centre_x - width // 2, 0, image.shape[1] - width))
        top = int(np.clip(centre_y - height // 2, 0, image.shape[0] - height))
        crop = image[top : top + height, left : left + width]
        frame = cv2.resize(crop, (640, 480), interpolation=cv2.INTER_AREA)
        cache[(name, shift)] = frame
        return frame

    return make


def to_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


@pytest.fixture(scope="session")
def jpeg() -> Callable[..., bytes]:
    return to_jpeg


def _face_patch(engine: FaceEngine, image: np.ndarray, width: int, margin: float = 0.6) -> np.ndarray:
    """The largest face of ``image`` with ``margin`` of its width around it, resized so the face is ``width`` px."""
    box = engine.detect(image, ENROLL)[0][0]
    pad = round(margin * box.width)
    top, left = max(0, box.top - pad), max(0, box.left - pad)
    crop = image[top : box.bottom + pad, left : box.right + pad]
    scale = width / box.width
    return cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def _paste(background: np.ndarray, patch: np.ndarray, centre_x: int, centre_y: int) -> np.ndarray:
    out = background.copy()
    top, left = centre_y - patch.shape[0] // 2, centre_x - patch.shape[1] // 2
    out[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return out


@pytest.fixture(scope="session")
def obama_with_a_smaller_face_in_the_corner(engine: FaceEngine, rgb: Callable[[str], np.ndarray]) -> np.ndarray:
    """obama.jpg (face 257 px, upper middle) with Biden's face at 0.72x its width in the lower right corner
    (a background person): detected at 0.49 of its area (over the live ratio 0.4), but off-centre."""
    image = rgb("obama")
    obama_box = engine.detect(image, ENROLL)[0][0]
    patch = _face_patch(engine, rgb("biden"), round(0.72 * obama_box.width))
    height, width = image.shape[:2]
    return _paste(image, patch, width - patch.shape[1] // 2 - 5, height - patch.shape[0] // 2 - 5)


@pytest.fixture(scope="session")
def face_patch(engine: FaceEngine) -> Callable[..., np.ndarray]:
    """``face_patch(image, width)``: the face of a photo with some context, resized to ``width`` px of face."""
    return functools.partial(_face_patch, engine)


@pytest.fixture(scope="session")
def paste() -> Callable[..., np.ndarray]:
    """``paste(background, patch, centre_x, centre_y)``: a copy of the background with the patch on it."""
    return _paste
