"""Capture sanity against injected or replayed frames (no grpc, no models): counts, timing, faces, track, motion."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from faceauth_common.boxes import Box
from liveness_service.faces import crop_with_context

TOO_FEW_FRAMES = "TOO_FEW_FRAMES"
CAPTURE_TOO_SHORT = "CAPTURE_TOO_SHORT"
NO_FACE = "NO_FACE"
MULTIPLE_FACES = "MULTIPLE_FACES"
TRACK_DISCONTINUOUS = "TRACK_DISCONTINUOUS"
STATIC_CAPTURE = "STATIC_CAPTURE"
FRAME_TIMING = "FRAME_TIMING"

DIFFERENCE_SIZE = 64  # face crops are compared at this size, in grey levels 0..255
COLOUR_BOX_SCALE = 1.6


@dataclass(frozen=True)
class SanityThresholds:
    min_frames: int = 5
    min_span_ms: float = 600.0
    max_faceless_fraction: float = 0.2
    # Box-centre movement between consecutive face frames, in face sizes.
    max_track_jump: float = 1.0
    # Face size ratio between consecutive face frames.
    max_scale_change: float = 1.5
    # Bhattacharyya distance of the hue/saturation histograms of consecutive face-with-context crops above
    # this: a different person or scene was spliced in (lighting and pose change it far less).
    max_colour_change: float = 0.34
    # ...below this for at least static_pair_fraction of the pairs: a still image sent as a video.
    static_difference: float = 1.0
    static_pair_fraction: float = 0.8
    # Frame times: the median interval and the mean one (span / (frames - 1)) must lie within this factor of the
    # nominal interval (1000 / nominal fps) either way, and no interval may exceed max_gap_intervals nominal ones.
    timing_tolerance: float = 2.0
    max_gap_intervals: float = 4.0


def capture_span_ms(frame_count: int, frame_times_ms: list[int], nominal_fps: float) -> float:
    if frame_times_ms:
        return float(frame_times_ms[-1] - frame_times_ms[0])
    return (frame_count - 1) * 1000.0 / nominal_fps


def frame_timing_problem(frame_times_ms: list[int], nominal_fps: float, thresholds: SanityThresholds) -> str:
    """Why the client's frame times do not look like a capture at the nominal rate ("" when they do, or when the
    request has none: then the nominal rate is assumed).

    A browser timer jitters by a few ms and may drop a frame; forged or re-timed frames (a clip's frames sent with
    times stretched to fill the required span, many frames with one time) do not keep the rate. Too-regular times
    are not judged: a browser's requestVideoFrameCallback on a steady camera can be regular to the millisecond.
    """
    if len(frame_times_ms) < 3:
        return ""
    nominal = 1000.0 / nominal_fps
    intervals = np.diff(np.asarray(frame_times_ms, np.float64))
    median = float(np.median(intervals))
    mean = float(intervals.mean())
    tolerance = thresholds.timing_tolerance
    if not nominal / tolerance <= median <= nominal * tolerance:
        return f"median frame interval {median:.0f} ms, nominal {nominal:.0f} ms"
    if not nominal / tolerance <= mean <= nominal * tolerance:
        return f"span {frame_times_ms[-1] - frame_times_ms[0]} ms for {len(frame_times_ms)} frames at {nominal_fps} fps"
    if float(intervals.max()) > thresholds.max_gap_intervals * nominal:
        return f"a {intervals.max():.0f} ms gap between frames"
    return ""


def face_patch(image_rgb: np.ndarray, box: Box) -> np.ndarray:
    """The face box as a grey DIFFERENCE_SIZE^2 float patch (the thing compared between frames)."""
    height, width = image_rgb.shape[:2]
    left, top = max(box.left, 0), max(box.top, 0)
    right, bottom = min(box.right, width), min(box.bottom, height)
    if right - left < 2 or bottom - top < 2:
        return np.zeros((DIFFERENCE_SIZE, DIFFERENCE_SIZE), np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(image_rgb[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (DIFFERENCE_SIZE, DIFFERENCE_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)


def colour_signature(image_rgb: np.ndarray, box: Box) -> np.ndarray:
    """Normalised 16x8 hue/saturation histogram of the face box enlarged 1.6x (face, hair, near background)."""
    crop = crop_with_context(image_rgb, box, COLOUR_BOX_SCALE, DIFFERENCE_SIZE)
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    return cv2.normalize(histogram, histogram, 1.0, 0.0, cv2.NORM_L1)


def colour_changes(signatures: list[np.ndarray | None]) -> list[float | None]:
    """Histogram distance of each frame's colour signature to the previous frame's (None without faces)."""
    out: list[float | None] = [None]
    for previous, current in itertools.pairwise(signatures):
        if previous is None or current is None:
            out.append(None)
        else:
            out.append(float(cv2.compareHist(previous, current, cv2.HISTCMP_BHATTACHARYYA)))
    return out


def patch_differences(patches: list[np.ndarray | None]) -> list[float | None]:
    """Mean abs difference of each face patch to the previous frame's (None when either has no face)."""
    out: list[float | None] = [None]
    for previous, current in itertools.pairwise(patches):
        out.append(None if previous is None or current is None else float(np.mean(np.abs(current - previous))))
    return out


def judge_sanity(
    face_counts: list[int],
    boxes: list[Box | None],
    differences: list[float | None],
    colour: list[float | None],
    span_ms: float,
    thresholds: SanityThresholds,
) -> list[str]:
    """Every failed sanity check, in a fixed order (empty when the capture looks like one live take)."""
    failed: list[str] = []
    frames = len(face_counts)
    if frames < thresholds.min_frames:
        failed.append(TOO_FEW_FRAMES)
    if span_ms < thresholds.min_span_ms:
        failed.append(CAPTURE_TOO_SHORT)
    faceless = sum(1 for count in face_counts if count == 0)
    if faceless == frames or faceless > thresholds.max_faceless_fraction * frames:
        failed.append(NO_FACE)
    if any(count > 1 for count in face_counts):
        failed.append(MULTIPLE_FACES)
    if _track_broken(boxes, colour, thresholds):
        failed.append(TRACK_DISCONTINUOUS)
    pairs = [d for d in differences[1:] if d is not None]
    if pairs and sum(1 for d in pairs if d < thresholds.static_difference) >= thresholds.static_pair_fraction * len(
        pairs
    ):
        failed.append(STATIC_CAPTURE)
    return failed


def track_jumps(boxes: list[Box | None]) -> list[tuple[float, float] | None]:
    """(centre jump in face sizes, size ratio >= 1) to the previous frame; None when either frame has no face."""
    out: list[tuple[float, float] | None] = [None]
    for previous, current in itertools.pairwise(boxes):
        if previous is None or current is None:
            out.append(None)
            continue
        (px, py), (cx, cy) = previous.centre, current.centre
        scale = (previous.size + current.size) / 2
        ratio = max(previous.size, current.size) / max(min(previous.size, current.size), 1.0)
        out.append((float(np.hypot(cx - px, cy - py) / scale), float(ratio)))
    return out


def _track_broken(boxes: list[Box | None], colour: list[float | None], thresholds: SanityThresholds) -> bool:
    for jump in track_jumps(boxes):
        if jump is not None and (jump[0] > thresholds.max_track_jump or jump[1] > thresholds.max_scale_change):
            return True
    return any(c is not None and c > thresholds.max_colour_change for c in colour)
