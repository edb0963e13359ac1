"""Planarity of a head turn: a flat picture turned, tilted or jiggled moves its landmarks by one homography; a real
head turning moves the nose against the eyes, brows and mouth (parallax). Numpy in, numbers out; no grpc.

For every face frame, the inner landmarks (brows, nose, eyes, mouth: dlib points 17-67; the jaw line is left out, its
points slide along the silhouette) are mapped from the capture's first face frame by the least-squares homography; the
residual is the RMS distance left, in face sizes (box size). The capture's planarity residual is the largest over its
frames. It is judged when a requested turn was found performed (and, when ``min_yaw_span`` is set, whenever head yaw
spans at least that many degrees, 10th to 90th percentile): a still face gives no parallax to measure. The yaw-span
trigger is off by default: real d9 windows whose yaw drifts over 15-20 deg without a turn measure only 0.0115-0.013
and were refused (attack suite, genuine captures).

Measured (20 frames at 10 fps, ``tools/motion_calibrate.py``): photos turned about the vertical axis by 20-40 deg with
``cv2.warpPerspective`` (black or mirrored borders, +-10 px / +-5 deg jitter, noise) stay at or below ~0.011 even when
their measured yaw spans 30-38 deg; the real clips with turns of 12-42 deg give 0.017-0.052. What it cannot stop:
a 3-D mask or a head model rendered in 3-D (a deepfake), which do have parallax.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceauth_common.boxes import Box

PLANAR_MOTION = "PLANAR_MOTION"

INNER_POINTS = list(range(17, 68))


@dataclass(frozen=True)
class PlanarityThresholds:
    max_residual: float = 0.016  # at or below: the landmarks moved like a flat picture
    min_yaw_span: float = 0.0  # > 0: also judged when head yaw spans this (10th-90th pct.); 0: requested turns only


def yaw_span(yaws: list[float | None]) -> float:
    valid = np.array([y for y in yaws if y is not None and np.isfinite(y)], np.float64)
    if len(valid) < 3:
        return 0.0
    return float(np.percentile(valid, 90) - np.percentile(valid, 10))


def planarity_residual(landmarks: list[np.ndarray | None], boxes: list[Box | None]) -> float | None:
    """Largest homography residual (in face sizes) of a frame's inner landmarks from the first face frame's."""
    faces = [(points, box) for points, box in zip(landmarks, boxes, strict=True) if points is not None and box]
    if len(faces) < 3:
        return None
    reference = faces[0][0][INNER_POINTS].astype(np.float64)
    size = float(np.mean([box.size for _, box in faces]))
    worst = 0.0
    for points, _ in faces[1:]:
        target = points[INNER_POINTS].astype(np.float64)
        homography, _ = cv2.findHomography(reference, target, 0)
        if homography is None:
            continue
        mapped = cv2.perspectiveTransform(reference[None], homography)[0]
        worst = max(worst, float(np.sqrt(np.mean(np.sum((mapped - target) ** 2, axis=1)))) / size)
    return worst


def judge_planarity(
    landmarks: list[np.ndarray | None],
    boxes: list[Box | None],
    yaws: list[float | None],
    thresholds: PlanarityThresholds,
    turn_performed: bool = False,
) -> tuple[float | None, bool]:
    """(the residual, or None when the capture holds no turn to judge; whether it moved like a flat picture).

    Judged when the challenge found a requested turn performed (a turn that passes the challenge is always judged),
    or, with ``min_yaw_span`` > 0, when the yaw spans that."""
    if not turn_performed and (thresholds.min_yaw_span <= 0 or yaw_span(yaws) < thresholds.min_yaw_span):
        return None, False
    residual = planarity_residual(landmarks, boxes)
    if residual is None:
        return None, False
    return residual, residual <= thresholds.max_residual
