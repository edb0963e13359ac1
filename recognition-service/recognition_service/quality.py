"""Face quality: is the chosen face big, sharp and bright enough, and how good is it (0..1)?

Numpy in, numbers out. The thresholds are ``QualitySettings`` (read from the environment in config.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from faceauth_common.boxes import Box


@dataclass(frozen=True)
class QualitySettings:
    min_face_px: int = 80  # face box width in original pixels
    min_sharpness: float = 10.0  # variance of the Laplacian on the face resized to 128 px wide
    min_brightness: float = 40.0  # mean luma of the face crop
    # A second face whose box area is at least this fraction of the largest one's: someone else is in
    # view and the frame is rejected. Smaller detections (background faces, logos) are ignored.
    multiple_face_ratio: float = 0.4


def sharpness_brightness(image: np.ndarray, box: Box) -> tuple[float, float]:
    crop = image[box.top : box.bottom, box.left : box.right]
    gray = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    brightness = float(gray.mean())
    # A fixed working width makes sharpness comparable between small and large faces.
    target_width = 128
    target_height = max(1, round(gray.shape[0] * target_width / max(1, gray.shape[1])))
    resized = cv2.resize(gray, (target_width, target_height), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(resized, cv2.CV_64F).var())
    return sharpness, brightness


def quality_score(
    box: Box,
    landmarks: dlib.full_object_detection,
    sharpness: float,
    brightness: float,
    settings: QualitySettings,
) -> float:
    """0..1: frontal pose (from landmarks), face size, sharpness and exposure."""
    points = np.array([(p.x, p.y) for p in landmarks.parts()], dtype=np.float64)
    # 5-point model: 0-1 one eye's corners, 2-3 the other's, 4 the base of the nose.
    eye_a, eye_b, nose = points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    eye_vector = eye_b - eye_a
    interocular = float(np.linalg.norm(eye_vector)) or 1.0
    eye_mid = (eye_a + eye_b) / 2
    # Yaw: how far the nose sits from the eyes' midpoint along the eye line; roll: eye-line angle.
    yaw = abs(float(np.dot(nose - eye_mid, eye_vector / interocular))) / interocular
    roll = abs(math.degrees(math.atan2(eye_vector[1], eye_vector[0])))
    roll = min(roll, 180 - roll)
    frontal = _clip(1 - yaw / 0.5) * _clip(1 - roll / 45)
    size = _clip(box.width / (2 * settings.min_face_px))
    sharp = _clip(sharpness / (4 * max(settings.min_sharpness, 1e-6)))
    exposure = _clip(1 - abs(brightness - 128) / 128 * 1.5 + 0.25)
    return round(0.4 * frontal + 0.2 * size + 0.25 * sharp + 0.15 * exposure, 4)


def _clip(value: float) -> float:
    return max(0.0, min(1.0, float(value)))
