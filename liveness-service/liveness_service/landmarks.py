"""Measurements from dlib's 68 facial landmarks: eye aspect ratio and head yaw (numpy in, numbers out)."""

from __future__ import annotations

import cv2
import numpy as np

# dlib 68-point indices (iBUG 300-W): eyes 36-41 (image-left eye) and 42-47 (image-right eye).
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)

# A generic head (arbitrary units, roughly mm) in camera-aligned axes: x to the image's right, y down,
# z away from the camera; the nose tip is the origin and is closest to the camera.
_MODEL_POINTS = np.array(
    [
        (0.0, 0.0, 0.0),  # 30 nose tip
        (0.0, 330.0, 65.0),  # 8 chin
        (-225.0, -170.0, 135.0),  # 36 outer corner of the image-left eye
        (225.0, -170.0, 135.0),  # 45 outer corner of the image-right eye
        (-150.0, 150.0, 125.0),  # 48 image-left mouth corner
        (150.0, 150.0, 125.0),  # 54 image-right mouth corner
    ],
    dtype=np.float64,
)
_POSE_INDICES = [30, 8, 36, 45, 48, 54]


def eye_aspect_ratio(points: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes (Soukupová & Čech 2016): ~0.3 open, ~0.1 closed."""

    def one(eye: np.ndarray) -> float:
        vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
        horizontal = np.linalg.norm(eye[0] - eye[3])
        return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0

    return (one(points[LEFT_EYE]) + one(points[RIGHT_EYE])) / 2.0


def head_yaw_degrees(points: np.ndarray, image_width: int, image_height: int) -> float:
    """Head yaw from solvePnP on six landmarks; positive when the face points towards the image's right.

    In an unmirrored camera frame the image's right is the user's own left, so positive = the user's left
    (the proto's convention). Camera: focal length = image width, principal point = image centre.
    """
    camera = np.array(
        [[image_width, 0, image_width / 2], [0, image_width, image_height / 2], [0, 0, 1]], dtype=np.float64
    )
    image_points = points[_POSE_INDICES].astype(np.float64)
    ok, rotation_vector, _ = cv2.solvePnP(
        _MODEL_POINTS, image_points, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        return float("nan")
    rotation, _ = cv2.Rodrigues(rotation_vector)
    facing = -rotation[:, 2]  # the direction the face looks (model -z) in camera axes
    return float(np.degrees(np.arctan2(facing[0], -facing[2])))
