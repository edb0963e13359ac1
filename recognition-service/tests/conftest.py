"""Shared fixtures of the recognition tests: real photos, the loaded engine, webcam-like frames."""

from __future__ import annotations

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
