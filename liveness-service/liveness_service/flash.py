"""Flash (colour-reflection) check: does the face reflect the screen colours the page painted? (numpy; no grpc)

The page paints a server-chosen random sequence of saturated colours around the video while it captures. Light from
the screen reaches the user's face (~0.3-0.6 m away) and changes the skin's colour in step with the sequence, a little
later (camera exposure and pipeline lag, ~0-300 ms); the room behind the user (a metre or more further) gets far less.
A photo, a replayed clip or a pre-recorded video was lit by whatever was on screen when it was made, not by this
sequence.

Model and measurement (per frame with landmarks):
  - regions: the *skin* (cheeks, nose, lower forehead from the 68 landmarks; eyes, brows, mouth and hair excluded),
    the *background* (outside the face box enlarged ``background_scale`` x, above the box's bottom so the torso is
    not counted; one set of pixels for the whole capture), and two bands just inside (0.8-0.95 x) and just outside
    (1.05-1.2 x) the detector's face box;
  - each region's mean colour, linearised from sRGB (screen light adds linearly);
  - screen light multiplies a surface's linear colour per channel by (1 + k * screen colour), so in *log* space it
    adds the same amount to every surface at the same distance whatever its albedo; a brightness change (blink, head
    turn, auto exposure) adds the same to all three channels. The check therefore uses the *log-chroma* (log of each
    channel minus the mean of the three logs) and its change over the capture, and takes the skin's minus the
    background's (this also removes a global white-balance drift of the camera);
  - the expected signal is the chroma of the painted colour, averaged over a short exposure window, delayed by a lag
    searched over ``lag_min_ms .. lag_max_ms``; the lag with the best correlation is kept.

A capture is *reflected* when, at the best lag: the correlation of the skin-minus-background chroma with the expected
chroma (``score``) reaches ``threshold``; its gain (log-chroma change per unit of screen chroma) reaches ``min_gain``;
the background's own response relative to the skin's (``background_ratio``, the larger of the ratio of log-chroma
gains and of absolute linear gains) stays within +-``max_background_ratio``; when ``min_edge_ratio`` is set (off by
default), the outside band's response relative to the inside band's, both against the background (``edge_ratio``),
is at least that; and enough colour
steps (``min_steps``) were each seen in at least ``min_frames_per_step`` face frames.

What it stops (each with a test that attacks it, and measured by ``tools/flash_calibrate.py``):
  (a) no reflection: a photo, a replayed or pre-recorded clip (also one with a blink or a turn) does not follow a
      random colour sequence chosen after it was made: the correlation is near zero;
  (b) a tint of whole frames in step with the sequence: multiplied (the background changes exactly like the skin:
      no differential gain) or added (the same absolute change everywhere: the background's absolute gain equals the
      skin's; ``background_ratio`` near 1 either way);
  (c) NOT by default: a uniform tint of the face box. With ``min_edge_ratio`` set (0.3), the band just outside the
      box (hair, ears, neck) must respond too, as real screen light falls smoothly across the box's edge
      (``edge_ratio`` ~0.07 for a tint of the detector's own box against a median ~0.6 in simulated genuine
      captures). But that stops only a hard-edged tint of the detector's exact box: a box 1.1-1.3 x larger reaches
      into the outside band (~0.97) and passes, a tint feathered over a head-shaped mask is in effect a relighting of
      the face, and the test refused ~10 % of simulated genuine captures (edge ratio below 0.3 where the head moves
      or the hair is dark). So it is off by default; the attack suite reports the box tint's APCER.

What it cannot stop: a real-time deepfake or relighting pipeline that renders the colour onto the face (a virtual
camera that reads the page's colours and relights a face model within the lag window), and a compromised device (the
attacker sees the sequence as soon as the page does). Timing alone cannot tell a fast renderer from a camera: the lag
window is up to 300 ms because real webcams differ that much. In very bright ambient light (sunlight, a bright
office with a dim screen) the reflection can fall below ``min_gain`` and a genuine user is refused (raise the screen
brightness, or disable the check: ``LIVENESS_CHECKS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from faceauth_common.boxes import Box

FLASH_NOT_REFLECTED = "FLASH_NOT_REFLECTED"

EXPOSURE_WINDOW_MS = 40.0  # a frame integrates the light of roughly its exposure time (webcams: 10-40 ms)
FOREHEAD = 0.2  # landmark_box: forehead above the brows, as a fraction of the brow-to-chin height
SAMPLE_STEP = 2  # regions are measured on every second pixel and row (640x480 -> 320x240)
# Bands just inside and just outside the detector's face box (scales of the box): real light falls smoothly across
# the box's edge (cheeks -> ears and hair, forehead -> hair, chin -> neck), a tint of the box stops at it.
EDGE_INSIDE = (0.8, 0.95)
EDGE_OUTSIDE = (1.05, 1.2)

# dlib 68-point landmark polygons of skin that faces the camera (image-left cheek, image-right cheek, nose).
_CHEEK_LEFT = [1, 2, 3, 4, 48, 31, 40, 41, 36]
_CHEEK_RIGHT = [15, 14, 13, 12, 54, 35, 47, 46, 45]
_NOSE = [27, 31, 32, 33, 34, 35]
_BROWS = list(range(17, 27))
_EYES = (list(range(36, 42)), list(range(42, 48)))
_MOUTH = list(range(48, 60))

_SRGB_TO_LINEAR = np.array(
    [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in np.arange(256) / 255.0], np.float32
)


@dataclass(frozen=True)
class FlashStep:
    rgb: int  # 0xRRGGBB
    duration_ms: int

    @property
    def linear(self) -> np.ndarray:
        """The colour as linear RGB 0..1 (what adds up as light)."""
        return _SRGB_TO_LINEAR[[(self.rgb >> 16) & 255, (self.rgb >> 8) & 255, self.rgb & 255]].astype(np.float64)


@dataclass(frozen=True)
class FlashThresholds:
    threshold: float = 0.7  # correlation of the skin-minus-background chroma with the expected chroma
    min_gain: float = 0.02  # log-chroma change per unit of screen chroma
    max_background_ratio: float = 0.5
    # Off unless set (LIVENESS_FLASH_MIN_EDGE_RATIO): it refuses ~10 % of simulated genuine captures and only a tint of
    # the detector's exact box (attack suite, bench/results/attacks.md).
    min_edge_ratio: float | None = None
    lag_min_ms: float = 0.0
    lag_max_ms: float = 300.0
    lag_step_ms: float = 20.0
    min_steps: int = 3
    min_frames_per_step: int = 2
    background_scale: float = 1.6


@dataclass(frozen=True)
class RegionColours:
    """Mean linear RGB (0..1) of one frame's skin, background and the bands just inside and outside the face box."""

    skin: np.ndarray
    background: np.ndarray
    edge_inside: np.ndarray
    edge_outside: np.ndarray


@dataclass
class FlashOutcome:
    reflected: bool
    score: float
    threshold: float
    face_gain: float
    background_ratio: float
    edge_ratio: float
    lag_ms: int
    covered_steps: int
    expected_rgb: list[int | None]  # per frame: the colour expected to light it (at the lag), None when outside
    detail: str  # why it was not reflected ("" when it was)


def validate_steps(steps: list[FlashStep], max_steps: int = 16, max_duration_ms: int = 2000) -> str:
    """The problem with a flash sequence ("" when it is well-formed)."""
    if len(steps) > max_steps:
        return f"flash has {len(steps)} steps, the limit is {max_steps}"
    for index, step in enumerate(steps):
        if not 0 <= step.rgb <= 0xFFFFFF:
            return f"flash step {index}: rgb {step.rgb} is not 0xRRGGBB"
        if not 1 <= step.duration_ms <= max_duration_ms:
            return f"flash step {index}: duration_ms must be 1..{max_duration_ms}, not {step.duration_ms}"
    return ""


def skin_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 mask (0/255) of cheeks, nose and a strip of forehead above the brows, minus eyes, brows and mouth."""
    mask = np.zeros(shape, np.uint8)
    points = np.round(landmarks).astype(np.int32)
    # The jaw-line points sit on the face's silhouette: pulled a quarter of the way towards the nose tip so that
    # hair and background never leak into the cheeks when the head turns.
    inner = landmarks.copy()
    inner[:17] += 0.25 * (landmarks[30] - landmarks[:17])
    inner_points = np.round(inner).astype(np.int32)
    for polygon in (_CHEEK_LEFT, _CHEEK_RIGHT):
        cv2.fillPoly(mask, [inner_points[polygon]], 255)
    cv2.fillPoly(mask, [points[_NOSE]], 255)
    face_height = float(np.linalg.norm(landmarks[8] - landmarks[27]))
    brows = landmarks[_BROWS]
    # A strip from just above the brows to 0.25 face heights higher: forehead, below most fringes.
    lower = brows - np.array([0.0, 0.06 * face_height], np.float32)
    upper = brows - np.array([0.0, 0.25 * face_height], np.float32)
    cv2.fillPoly(mask, [np.round(np.vstack([lower, upper[::-1]])).astype(np.int32)], 255)
    margin = max(1, round(0.04 * face_height))
    cut = np.zeros(shape, np.uint8)
    for polygon in (*_EYES, _MOUTH):
        cv2.fillConvexPoly(cut, cv2.convexHull(points[polygon]), 255)
    cv2.polylines(cut, [points[_BROWS[:5]], points[_BROWS[5:]]], False, 255, thickness=2 * margin)
    cut = cv2.dilate(cut, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return cv2.bitwise_and(mask, cv2.bitwise_not(cut))


def landmark_box(landmarks: np.ndarray) -> Box:
    """The face's extent from its 68 landmarks: jaw line and brows, raised by a fifth of the brow-to-chin height to
    take in the forehead as the detector's box does; about that box in size and place, but it follows the face
    smoothly instead of jumping between the detector's pyramid levels."""
    outline = landmarks[:27]
    top, bottom = float(outline[:, 1].min()), float(outline[:, 1].max())
    return Box(
        math.floor(float(outline[:, 0].min())),
        math.floor(top - FOREHEAD * (bottom - top)),
        math.ceil(float(outline[:, 0].max())),
        math.ceil(bottom),
    )


def _scaled(box: Box, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    cx, cy = box.centre
    half_w, half_h = box.width * scale / 2, box.height * scale / 2
    return (
        max(0, round(cx - half_w)),
        max(0, round(cy - half_h)),
        min(width, round(cx + half_w)),
        min(height, round(cy + half_h)),
    )


def _box_mask(shape: tuple[int, int], box: Box, scale: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    left, top, right, bottom = _scaled(box, scale, shape[1], shape[0])
    mask[top:bottom, left:right] = 255
    return mask


def _band_mask(shape: tuple[int, int], box: Box, inner: float, outer: float) -> np.ndarray:
    """The frame of the face box between two scales of it."""
    return cv2.bitwise_and(_box_mask(shape, box, outer), cv2.bitwise_not(_box_mask(shape, box, inner)))


def measure_capture(
    images_rgb: list[np.ndarray],
    landmarks: list[np.ndarray | None],
    boxes: list[Box | None],
    background_scale: float = 1.6,
) -> list[RegionColours | None]:
    """Each frame's region colours (None without landmarks, or when a region is too small to measure).

    The background is one set of pixels for the whole capture (outside every frame's enlarged face extent, above the
    highest chin) so that the face moving over it does not change what is averaged. The extent is the landmarks'
    (``landmark_box``), not the detector's box: HOG's box jumps between pyramid levels from frame to frame (298 <-> 360
    px wide on one still, close face), and the union of those jumps, enlarged, covered the whole frame of a close
    face: no common background was left, each frame fell back to its own, and genuine captures were refused
    (FLASH_NOT_REFLECTED, then TRACK_DISCONTINUOUS from the colour check: 5 of 60 in the attack suite). The bands
    at the box's edge stay on the detector's box (the box-tint test is about that box).
    """
    faces = [(i, b) for i, b in enumerate(boxes) if b is not None and landmarks[i] is not None]
    if not faces:
        return [None] * len(images_rgb)
    height, width = images_rgb[faces[0][0]].shape[:2]
    shape = ((height + SAMPLE_STEP - 1) // SAMPLE_STEP, (width + SAMPLE_STEP - 1) // SAMPLE_STEP)
    small_boxes = {i: Box(*(round(v / SAMPLE_STEP) for v in (b.left, b.top, b.right, b.bottom))) for i, b in faces}
    extents = {i: landmark_box(landmarks[i] / SAMPLE_STEP) for i, _ in faces}  # type: ignore[operator]
    background = np.full(shape, 255, np.uint8)
    for extent in extents.values():
        background = cv2.bitwise_and(background, cv2.bitwise_not(_box_mask(shape, extent, background_scale)))
    background[min(b.bottom for b in extents.values()) :, :] = 0
    out: list[RegionColours | None] = [None] * len(images_rgb)
    for index, box in small_boxes.items():
        small = images_rgb[index][::SAMPLE_STEP, ::SAMPLE_STEP]
        if small.shape[:2] != shape:
            continue
        skin = skin_mask(landmarks[index] / SAMPLE_STEP, shape)  # type: ignore[operator]
        minimum = max(30, box.area // 50)
        own_background = background
        if np.count_nonzero(background) < minimum:
            # The face moved over most of the frame: this frame's own background (outside its enlarged extent).
            extent = extents[index]
            own_background = cv2.bitwise_not(_box_mask(shape, extent, background_scale))
            own_background[max(extent.bottom, 0) :, :] = 0
        means = []
        bands = (_band_mask(shape, box, *EDGE_INSIDE), _band_mask(shape, box, *EDGE_OUTSIDE))
        for mask in (skin, own_background, *bands):
            selected = small[mask > 0]
            if len(selected) < minimum:
                break
            means.append(_SRGB_TO_LINEAR[selected].mean(axis=0).astype(np.float64))
        else:
            out[index] = RegionColours(*means)
    return out


def expected_colours(
    steps: list[FlashStep], start_ms: float, times_ms: np.ndarray, lag_ms: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: mean linear screen colour over its exposure window (delayed by lag), whether the window lies inside
    the sequence, and the index of the step that covers most of it."""
    ends = start_ms + np.cumsum([s.duration_ms for s in steps], dtype=np.float64)
    begins = np.concatenate([[start_ms], ends[:-1]])
    colours = np.array([s.linear for s in steps])
    window_end = times_ms - lag_ms
    window_begin = window_end - EXPOSURE_WINDOW_MS
    overlap = np.clip(
        np.minimum(window_end[:, None], ends[None, :]) - np.maximum(window_begin[:, None], begins[None, :]), 0, None
    )
    inside = (window_begin >= begins[0]) & (window_end <= ends[-1])
    weights = overlap / EXPOSURE_WINDOW_MS
    return weights @ colours, inside, np.argmax(overlap, axis=1)


def _log_chroma(values: np.ndarray) -> np.ndarray:
    logs = np.log(np.maximum(values, 1e-4))
    return logs - logs.mean(axis=1, keepdims=True)


def _centred(values: np.ndarray) -> np.ndarray:
    return values - values.mean(axis=0, keepdims=True)


def _gain(response: np.ndarray, expected: np.ndarray) -> float:
    energy = float(np.sum(expected * expected))
    return float(np.sum(response * expected)) / energy if energy > 0 else 0.0


def _correlation(response: np.ndarray, expected: np.ndarray) -> float:
    norm = float(np.linalg.norm(response) * np.linalg.norm(expected))
    return float(np.sum(response * expected)) / norm if norm > 0 else 0.0


def _pack(linear: np.ndarray) -> int:
    encoded = [int(np.searchsorted(_SRGB_TO_LINEAR, value - 1e-6)) for value in np.clip(linear, 0.0, 1.0)]
    return (min(encoded[0], 255) << 16) | (min(encoded[1], 255) << 8) | min(encoded[2], 255)


def judge_flash(
    samples: list[RegionColours | None],
    times_ms: list[float],
    steps: list[FlashStep],
    start_ms: float,
    thresholds: FlashThresholds,
) -> FlashOutcome:
    """Search the lag, measure the response at the best one and decide (see the module docstring)."""
    times = np.asarray(times_ms, np.float64)
    measured = np.array([s is not None for s in samples])
    best: tuple[float, float, np.ndarray, np.ndarray, np.ndarray] | None = None
    lags = np.arange(thresholds.lag_min_ms, thresholds.lag_max_ms + 1e-9, thresholds.lag_step_ms)
    for lag in lags:
        colours, inside, step_index = expected_colours(steps, start_ms, times, float(lag))
        used = measured & inside
        if used.sum() < 3:
            continue
        expected = _centred(colours[used] - colours[used].mean(axis=1, keepdims=True))
        differential = _centred(
            _log_chroma(np.array([samples[i].skin for i in np.flatnonzero(used)]))  # type: ignore[union-attr]
            - _log_chroma(np.array([samples[i].background for i in np.flatnonzero(used)]))  # type: ignore[union-attr]
        )
        correlation = _correlation(differential, expected)
        if best is None or correlation > best[1]:
            best = (float(lag), correlation, used, colours, step_index)
    if best is None:
        return FlashOutcome(
            False, 0.0, thresholds.threshold, 0.0, 0.0, 0.0, 0, 0, [None] * len(samples),
            "fewer than 3 face frames fall inside the flash sequence",
        )  # fmt: skip
    lag, correlation, used, colours, step_index = best
    indices = np.flatnonzero(used)
    chosen = [samples[i] for i in indices]
    expected = _centred(colours[used] - colours[used].mean(axis=1, keepdims=True))
    skin = np.array([s.skin for s in chosen])  # type: ignore[union-attr]
    background = np.array([s.background for s in chosen])  # type: ignore[union-attr]
    inside_band = _centred(_log_chroma(np.array([s.edge_inside for s in chosen])))  # type: ignore[union-attr]
    outside_band = _centred(_log_chroma(np.array([s.edge_outside for s in chosen])))  # type: ignore[union-attr]
    skin_log, background_log = _centred(_log_chroma(skin)), _centred(_log_chroma(background))
    face_gain = _gain(skin_log - background_log, expected)
    skin_gain = max(_gain(skin_log, expected), thresholds.min_gain)
    # Absolute linear change, both regions in units of the skin's mean level: an added tint is the same everywhere.
    level = float(skin.mean())
    skin_absolute = _gain(_centred(skin / level), expected)
    background_absolute = _gain(_centred(background / level), expected)
    background_ratio = max(
        _gain(background_log, expected) / skin_gain,
        background_absolute / max(skin_absolute, thresholds.min_gain),
    )
    # Both against the background: the camera's white balance shifts every region alike.
    edge_ratio = _gain(outside_band - background_log, expected) / max(
        _gain(inside_band - background_log, expected), thresholds.min_gain
    )
    per_step = np.bincount(step_index[used], minlength=len(steps))
    covered = int(np.sum(per_step >= thresholds.min_frames_per_step))
    problems = []
    if covered < thresholds.min_steps:
        problems.append(
            f"{covered} colour step(s) seen in >= {thresholds.min_frames_per_step} frames,"
            f" {thresholds.min_steps} needed"
        )
    if correlation < thresholds.threshold:
        problems.append(f"correlation {correlation:.2f} < {thresholds.threshold}")
    if face_gain < thresholds.min_gain:
        problems.append(f"gain {face_gain:.3f} < {thresholds.min_gain}")
    # Either sign: a background that moves against the sequence is as unlike a real reflection as one that follows it.
    if abs(background_ratio) > thresholds.max_background_ratio:
        problems.append(f"background ratio {background_ratio:.2f} beyond +-{thresholds.max_background_ratio}")
    if thresholds.min_edge_ratio is not None and edge_ratio < thresholds.min_edge_ratio:
        problems.append(f"edge ratio {edge_ratio:.2f} < {thresholds.min_edge_ratio}")
    expected_rgb: list[int | None] = [None] * len(samples)
    _, inside, _ = expected_colours(steps, start_ms, times, lag)
    for index in np.flatnonzero(inside):
        expected_rgb[index] = _pack(colours[index])
    return FlashOutcome(
        reflected=not problems,
        score=max(0.0, correlation),
        threshold=thresholds.threshold,
        face_gain=face_gain,
        background_ratio=background_ratio,
        edge_ratio=edge_ratio,
        lag_ms=round(lag),
        covered_steps=covered,
        expected_rgb=expected_rgb,
        detail="; ".join(problems),
    )
