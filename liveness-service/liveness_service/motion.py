"""Synthetic motion: is the capture a still image made to move? (numpy in, numbers out; no grpc)

Every face frame is compared with the capture's first face frame after aligning it (a similarity transform fitted to
the landmarks of the jaw line, brows and nose, which a blink does not move), low-passing both (a Gaussian of
``BLUR_FRACTION`` face widths: sensor and JPEG noise go, the shape of a face stays) and matching their brightness
(mean and spread over the face: a tint or an exposure step is not motion). What is left is real change: pose,
expression, gaze, blinks. Per frame it gives the mean change of the *face* (the face's hull minus the eyes) and of the
*eyes*, in grey levels.

  - a still picture + noise and/or jitter: the face and the eyes stay at the noise floor -> ``STATIC_CAPTURE`` (the
    older rule on raw grey differences of consecutive frames is kept beside it);
  - a painted blink: the face stays at the noise floor while the eyes change -> ``SYNTHETIC_MOTION``.

A real face drifts from its first frame within two seconds (pose, expression, breathing, the sway of someone holding
still). A person holding perfectly still in front of a perfectly still camera could look like a still; the prompts
(blink, turn) make that unlikely. Thresholds and what they catch: ``tools/motion_calibrate.py``. What it cannot stop:
a painted blink that also moves the rest of the face (warping it like a talking head), a deepfake.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceauth_common.boxes import Box

SYNTHETIC_MOTION = "SYNTHETIC_MOTION"

ALIGN_POINTS = list(range(0, 36))  # jaw line, brows, nose: still during a blink
EYES = (list(range(36, 42)), list(range(42, 48)))
WORK_WIDTH = 96  # faces are compared at this width (pixels)
BLUR_FRACTION = 0.025


@dataclass(frozen=True)
class MotionThresholds:
    # The face did not move when this percentile of its aligned, low-passed, brightness-matched change from the first
    # frame (grey levels) stays below still_face. 0.8: real d9 windows of a person holding still while blinking measure
    # 0.87-1.2 (0.9 refused some, in the browser tests too), portraits with painted eyes and sigma 1.5-3 noise
    # 0.43-1.8: only near-exact copies are caught here; the flash check stops the rest.
    still_face: float = 0.8
    face_percentile: float = 80.0
    # An eye change at least this (grey levels) is a blink or a glance.
    eye_change: float = 3.0


@dataclass(frozen=True)
class PairChange:
    face: float
    eyes: float


def _crop(grey: np.ndarray, box: Box, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face box of the reference frame, WORK_WIDTH wide, from ``grey`` mapped by ``transform`` (2x3, into the
    reference frame); and the matrix from reference-frame pixels to crop pixels."""
    margin = 0.1 * box.width
    scale = WORK_WIDTH / (box.width + 2 * margin)
    to_crop = np.array([[scale, 0, -(box.left - margin) * scale], [0, scale, -(box.top - margin) * scale]], np.float64)
    full = np.vstack([transform, [0, 0, 1]])
    combined = (np.vstack([to_crop, [0, 0, 1]]) @ full)[:2]
    height = round((box.height + 2 * margin) * scale)
    return cv2.warpAffine(grey, combined, (WORK_WIDTH, height), flags=cv2.INTER_AREA), to_crop


def pair_change(
    previous_rgb: np.ndarray,
    current_rgb: np.ndarray,
    previous_points: np.ndarray,
    current_points: np.ndarray,
    previous_box: Box,
) -> PairChange:
    transform, _ = cv2.estimateAffinePartial2D(
        current_points[ALIGN_POINTS].astype(np.float32), previous_points[ALIGN_POINTS].astype(np.float32)
    )
    if transform is None:
        transform = np.eye(2, 3)
    identity = np.eye(2, 3)
    before, to_crop = _crop(cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY), previous_box, identity)
    after, _ = _crop(cv2.cvtColor(current_rgb, cv2.COLOR_RGB2GRAY), previous_box, transform)
    sigma = max(0.8, BLUR_FRACTION * WORK_WIDTH / 0.83)
    before = cv2.GaussianBlur(before.astype(np.float32), (0, 0), sigma)
    after = cv2.GaussianBlur(after.astype(np.float32), (0, 0), sigma)
    points = cv2.transform(previous_points[None].astype(np.float64), to_crop)[0].astype(np.int32)
    face = np.zeros(before.shape, np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(points[:27]), 255)
    eyes = np.zeros(before.shape, np.uint8)
    for eye in EYES:
        cv2.fillConvexPoly(eyes, cv2.convexHull(points[eye]), 255)
    eyes = cv2.dilate(eyes, np.ones((7, 7), np.uint8))
    face = cv2.bitwise_and(face, cv2.bitwise_not(eyes))
    inside = face > 0
    if inside.sum() < 50:
        return PairChange(0.0, 0.0)
    # Brightness matched over the face: a tint or an exposure step is not motion.
    mean_b, std_b = before[inside].mean(), before[inside].std() + 1e-3
    mean_a, std_a = after[inside].mean(), after[inside].std() + 1e-3
    after = (after - mean_a) * (std_b / std_a) + mean_b
    difference = np.abs(after - before)
    return PairChange(float(difference[inside].mean()), float(difference[eyes > 0].mean()))


def changes_from_first(
    images_rgb: list[np.ndarray], landmarks: list[np.ndarray | None], boxes: list[Box | None]
) -> list[PairChange]:
    """Each later face frame's change from the capture's first face frame (a still image's frames all stay at the
    noise floor of the first; a real face drifts away from it: pose, expression, gaze)."""
    faces = [i for i, (p, b) in enumerate(zip(landmarks, boxes, strict=True)) if p is not None and b is not None]
    if len(faces) < 3:
        return []
    first = faces[0]
    return [
        pair_change(images_rgb[first], images_rgb[i], landmarks[first], landmarks[i], boxes[first])  # type: ignore[arg-type]
        for i in faces[1:]
    ]


def judge_motion(changes: list[PairChange], thresholds: MotionThresholds) -> tuple[bool, bool]:
    """(static: the face and the eyes stay at the first frame's noise floor; synthetic: the face does while the eyes
    change: a painted blink). ``face_percentile`` of the frames' face changes is compared, so a few frames of a
    real face drifting are enough to count as moving."""
    if not changes:
        return False, False
    face = float(np.percentile([c.face for c in changes], thresholds.face_percentile))
    eyes = max(c.eyes for c in changes)
    face_still = face < thresholds.still_face
    return face_still and eyes < thresholds.eye_change, face_still and eyes >= thresholds.eye_change
