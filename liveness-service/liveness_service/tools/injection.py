"""Injected-still attacks made from one picture (offline tool; tests, calibration and the attack suite): a photo
turned like a head, jiggled like a hand-held print, and a painted blink. Each returns RGB frames for a capture."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def turn_plane(image_rgb: np.ndarray, degrees: float, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """The picture rotated about its vertical centre line by ``degrees`` and seen by a camera of focal length = width
    (``cv2.warpPerspective``); ``border``: BORDER_CONSTANT (black) or BORDER_REFLECT (mirrored)."""
    height, width = image_rgb.shape[:2]
    corners = np.array([[-width / 2, -height / 2], [width / 2, -height / 2], [width / 2, height / 2],
                        [-width / 2, height / 2]], np.float64)  # fmt: skip
    angle = np.radians(degrees)
    depth = width + corners[:, 0] * np.sin(angle)
    projected = np.stack(
        [width * corners[:, 0] * np.cos(angle) / depth + width / 2, width * corners[:, 1] / depth + height / 2], axis=1
    )
    matrix = cv2.getPerspectiveTransform(
        (corners + np.array([width / 2, height / 2])).astype(np.float32), projected.astype(np.float32)
    )
    return cv2.warpPerspective(image_rgb, matrix, (width, height), borderMode=border)


def jiggle(
    image_rgb: np.ndarray, rng: np.random.Generator, shift_px: float = 10.0, degrees: float = 5.0, border: int = 0
) -> np.ndarray:
    """A hand-held picture: shifted by up to ``shift_px`` and rotated by up to ``degrees`` in the image plane."""
    height, width = image_rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), float(rng.uniform(-degrees, degrees)), 1.0)
    matrix[:, 2] += rng.uniform(-shift_px, shift_px, 2)
    return cv2.warpAffine(image_rgb, matrix, (width, height), borderMode=border)


def add_noise(image_rgb: np.ndarray, rng: np.random.Generator, levels: float = 3.0) -> np.ndarray:
    return np.clip(image_rgb + rng.normal(0.0, levels, image_rgb.shape), 0, 255).astype(np.uint8)


def turned_photo(
    image_rgb: np.ndarray,
    degrees: float,
    rng: np.random.Generator,
    frames: int = 20,
    border: int = cv2.BORDER_CONSTANT,
    jitter: bool = False,
    noise: float = 2.0,
) -> list[np.ndarray]:
    """A flat picture held still for a fifth of the capture, turned to ``degrees`` over the next two fifths, held."""
    out = []
    for index in range(frames):
        progress = min(1.0, max(0.0, (index - frames / 5) / (2 * frames / 5)))
        frame = turn_plane(image_rgb, degrees * progress, border)
        if jitter:
            frame = jiggle(frame, rng, border=border)
        out.append(add_noise(frame, rng, noise))
    return out


def paint_eyes_closed(image_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The eyes painted shut: each eye's opening filled with the lid's skin colour (sampled between the eye and the
    brow) and a dark lash line drawn along the lower lid, edges softened."""
    painted = image_rgb.astype(np.float32)
    for eye, brow in ((range(36, 42), range(17, 22)), (range(42, 48), range(22, 27))):
        points = landmarks[list(eye)]
        lid = np.round(points[1:3].mean(axis=0) * 0.6 + landmarks[list(brow)].mean(axis=0) * 0.4).astype(int)
        colour = image_rgb[lid[1] - 2 : lid[1] + 3, lid[0] - 2 : lid[0] + 3].reshape(-1, 3).mean(axis=0)
        mask = np.zeros(image_rgb.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
        mask = cv2.dilate(mask, np.ones((7, 7), np.uint8))
        soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 2.0)[..., None]
        painted = painted * (1 - soft) + colour * soft
        lower = np.round(points[[0, 5, 4, 3]]).astype(np.int32)
        line = np.zeros(image_rgb.shape[:2], np.uint8)
        cv2.polylines(line, [lower], False, 255, 2)
        dark = cv2.GaussianBlur(line.astype(np.float32) / 255.0, (0, 0), 0.8)[..., None]
        painted = painted * (1 - dark) + np.array([45.0, 30.0, 25.0]) * dark
    return np.clip(np.round(painted), 0, 255).astype(np.uint8)


def paste_eyes(
    image_rgb: np.ndarray, landmarks: np.ndarray, donor_rgb: np.ndarray, donor_landmarks: np.ndarray
) -> np.ndarray:
    """The eye regions of ``donor_rgb`` (e.g. a frame of the same person with the eyes closed) pasted onto the
    picture, aligned by a similarity transform of the eye-and-brow landmarks and feathered: a locally edited still."""
    region = list(range(17, 27)) + list(range(36, 48))
    transform, _ = cv2.estimateAffinePartial2D(
        donor_landmarks[region].astype(np.float32), landmarks[region].astype(np.float32)
    )
    height, width = image_rgb.shape[:2]
    warped = cv2.warpAffine(donor_rgb, transform, (width, height), flags=cv2.INTER_LINEAR)
    mask = np.zeros((height, width), np.uint8)
    for eye in (range(36, 42), range(42, 48)):
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks[list(eye)]).astype(np.int32)), 255)
    size = float(np.linalg.norm(landmarks[45] - landmarks[36]))
    mask = cv2.dilate(mask, np.ones((2 * round(0.08 * size) + 1,) * 2, np.uint8))
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), max(1.0, 0.03 * size))[..., None]
    return np.clip(np.round(image_rgb * (1 - soft) + warped * soft), 0, 255).astype(np.uint8)


def painted_blink(
    image_rgb: np.ndarray,
    landmarks: np.ndarray,
    rng: np.random.Generator,
    frames: int = 15,
    closed: Sequence[int] = (6, 7, 8, 9),
    noise: float = 3.0,
    jitter: bool = False,
    donor: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Copies of one portrait with the eyes closed in the ``closed`` frames, noise (and optionally jitter) added.
    ``donor``: (frame, landmarks) whose closed eyes are pasted in (dlib then sees a blink); without one the eyes are
    painted over (``paint_eyes_closed``), which dlib's landmarks mostly do not follow."""
    shut = paste_eyes(image_rgb, landmarks, *donor) if donor else paint_eyes_closed(image_rgb, landmarks)
    out = []
    for index in range(frames):
        frame = shut if index in closed else image_rgb
        if jitter:
            frame = jiggle(frame, rng)
        out.append(add_noise(frame, rng, noise))
    return out
