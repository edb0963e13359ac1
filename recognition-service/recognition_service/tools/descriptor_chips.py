"""Face chips for checking the descriptor port: every face dlib finds in some images, as dlib's 150x150 chip.

Detection is dlib's HOG detector with one upsampling step (small faces in group photos count too), landmarks
its 5-point predictor, the chip ``dlib.get_face_chip(image, landmarks, 150, 0.25)``: exactly what
``compute_face_descriptor(image, landmarks)`` aligns internally. Video files give a few frames each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from recognition_service.descriptor import CHIP_PADDING, CHIP_SIZE
from recognition_service.engine import model_paths
from recognition_service.tools.images import IMAGE_SUFFIXES, load_image_file

REPOSITORY = Path(__file__).resolve().parents[3]
VIDEO_SUFFIXES = {".mp4"}


def repository_test_images() -> list[Path]:
    """The repository's own face photos and clips (tests/data), the suite's parity data."""
    root = REPOSITORY / "tests" / "data"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)


def _video_frames(path: Path, count: int) -> Iterator[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or count
        for index in np.linspace(0, max(total - 1, 0), count).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def images_of(
    paths: Iterable[Path], frames_per_video: int = 4, max_side: int = 1000
) -> Iterator[tuple[str, np.ndarray]]:
    """(label, RGB image) for every photo, and ``frames_per_video`` frames of every clip; large images shrunk."""
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            for index, frame in enumerate(_video_frames(path, frames_per_video)):
                yield f"{path}#{index}", frame
            continue
        image = load_image_file(path)
        scale = max_side / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        yield str(path), np.ascontiguousarray(image)


def chips_from_images(
    paths: Iterable[Path], frames_per_video: int = 4, limit: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """(n, 150, 150, 3) uint8 chips of every face found, and a label per chip (``file[#frame]@face``)."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_paths()["shape_predictor"]))
    chips, labels = [], []
    for label, image in images_of(paths, frames_per_video):
        for face, rect in enumerate(detector(image, 1)):
            landmarks = predictor(image, rect)
            chips.append(dlib.get_face_chip(image, landmarks, size=CHIP_SIZE, padding=CHIP_PADDING))
            labels.append(f"{label}@{face}")
            if limit is not None and len(chips) >= limit:
                return np.asarray(chips, dtype=np.uint8), labels
    return np.asarray(chips, dtype=np.uint8).reshape(-1, CHIP_SIZE, CHIP_SIZE, 3), labels
