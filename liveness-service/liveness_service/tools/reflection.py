"""Reflection simulator: what a screen flashing colours does to a webcam capture of a face (offline tool; tests,
calibration and the attack suite). Also the tint attacks that try to fake it.

Model (linear light, per pixel and channel c, frame at time t):

    out_c = in_c * (1 + s * m(x) * (X @ L(t))_c) * w_c(t) + noise

  - ``L(t)``: the linear screen colour the camera saw: the painted sequence delayed by the camera's pipeline
    ``delay_ms`` (0-250 ms), through a first-order filter (``tau_ms``, exposure/rolling readout smearing), averaged
    over the exposure window; zero (ambient light only) before and after the sequence;
  - ``X``: screen-primary to camera-channel crosstalk (identity plus 0-15 % off the diagonal);
  - ``s``: the screen's light on the face relative to the ambient light, drawn from ``STRENGTH_RANGE`` (0.08-0.5:
    a laptop or phone screen at 30-50 cm in a room lit at ~100-500 lux);
  - ``m(x)``: a feathered head mask (an ellipse over face, forehead, hair and ears from the 68 landmarks, plus the
    neck and shoulders at half strength) with shading that falls off towards the head's silhouette, and a small floor
    ``background_fraction`` (0-8 %) everywhere for the room behind;
  - ``w_c(t)``: optional mild auto white balance / exposure: a fraction (0-50 %) of the frame's mean colour gain is
    divided out, following the scene with a first-order lag of ~300 ms;
  - noise: Gaussian, 0.5-2.5 grey levels in sRGB (sensor and re-encoding), then rounding to 8 bits.

Limits: one flat "ambient" per capture (the source clip's own light is taken as the albedo x ambient); no specular
highlights, no subsurface scattering, no per-surface normals beyond the radial shading, no shadows from the nose; the
source clips are already compressed videos. It is a model of the physics the check relies on, so calibrating the check
on it measures self-consistency and the margin against the tint attacks, not the real-world BPCER: that needs real
captures (the lead's bench on real webcams).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from faceauth_common.boxes import Box
from liveness_service.flash import FlashStep

PALETTE = (0xFF0000, 0x00FF00, 0x0000FF, 0x00FFFF, 0xFF00FF, 0xFFFF00)
STRENGTH_RANGE = (0.08, 0.5)
DELAY_RANGE_MS = (0.0, 250.0)

_LINEAR = (np.arange(256) / 255.0).astype(np.float32)
_LINEAR = np.where(_LINEAR <= 0.04045, _LINEAR / 12.92, ((_LINEAR + 0.055) / 1.055) ** 2.4).astype(np.float32)


def to_linear(image_rgb: np.ndarray) -> np.ndarray:
    return _LINEAR[image_rgb]


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear 0..1 float -> sRGB float 0..255 (not rounded)."""
    linear = np.clip(linear, 0.0, 1.0)
    return 255.0 * np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def random_sequence(
    rng: np.random.Generator, steps: tuple[int, int] = (4, 6), duration_ms: tuple[int, int] = (340, 500)
) -> list[FlashStep]:
    """A sequence like auth-web's: saturated colours, never the same twice in a row, 340-500 ms each."""
    count = int(rng.integers(steps[0], steps[1] + 1))
    colours: list[int] = []
    while len(colours) < count:
        colour = int(rng.choice(PALETTE))
        if not colours or colour != colours[-1]:
            colours.append(colour)
    return [FlashStep(c, int(rng.integers(duration_ms[0], duration_ms[1] + 1))) for c in colours]


def screen_light(
    steps: Sequence[FlashStep], start_ms: float, times_ms: Sequence[float], delay_ms: float, tau_ms: float,
    exposure_ms: float = 33.0,
) -> np.ndarray:  # fmt: skip
    """(frames, 3) linear screen light the camera integrated for each frame (zero outside the sequence)."""
    end = start_ms + sum(s.duration_ms for s in steps)
    last = max(float(np.max(times_ms)), end) + 1
    first = min(float(np.min(times_ms)) - delay_ms - exposure_ms - 5 * tau_ms, start_ms) - 1
    clock = np.arange(first, last, 1.0)
    painted = np.zeros((len(clock), 3))
    begin = start_ms
    for step in steps:
        painted[(clock >= begin) & (clock < begin + step.duration_ms)] = step.linear
        begin += step.duration_ms
    filtered = np.empty_like(painted)
    alpha = 1.0 - np.exp(-1.0 / max(tau_ms, 1e-3))
    state = np.zeros(3)
    for index, value in enumerate(painted):
        state = state + alpha * (value - state)
        filtered[index] = state
    out = np.zeros((len(times_ms), 3))
    for frame, time_ms in enumerate(times_ms):
        window = (clock > time_ms - delay_ms - exposure_ms) & (clock <= time_ms - delay_ms)
        if window.any():
            out[frame] = filtered[window].mean(axis=0)
    return out


def head_mask(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """Float 0..1: feathered head (face, forehead, hair, ears) and half-strength neck/shoulders, radial shading."""
    height, width = shape
    jaw = landmarks[:17]
    face_width = float(jaw[:, 0].max() - jaw[:, 0].min())
    brow_y = float(landmarks[17:27, 1].mean())
    chin = landmarks[8]
    face_height = float(chin[1] - brow_y)
    centre_x = float(landmarks[27:36, 0].mean())
    centre_y = chin[1] - 0.75 * (face_height * 1.9)
    semi_x, semi_y = 0.72 * face_width, 0.75 * face_height * 1.9
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.sqrt(((xs - centre_x) / semi_x) ** 2 + ((ys - centre_y) / semi_y) ** 2)
    head = np.clip(1.0 - radius**2 * 0.45, 0.0, 1.0) * (radius <= 1.0)
    torso_x = (xs - centre_x) / (1.6 * face_width)
    torso_y = (ys - chin[1] - 1.2 * face_height) / (1.3 * face_height)
    torso_radius = np.sqrt(torso_x**2 + torso_y**2)
    torso = 0.5 * np.clip(1.0 - torso_radius**2 * 0.5, 0.0, 1.0) * (torso_radius <= 1.0)
    mask = np.maximum(head, torso).astype(np.float32)
    feather = max(1.0, 0.06 * face_width)
    return cv2.GaussianBlur(mask, (0, 0), feather)


@dataclass(frozen=True)
class ReflectionModel:
    strength: float
    delay_ms: float
    tau_ms: float
    crosstalk: np.ndarray  # 3x3, screen primaries -> camera channels
    background_fraction: float
    white_balance: float  # fraction of the frame's colour gain the camera divides out
    noise_levels: float

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        strength: float | None = None,
        delay_ms: float | None = None,
        white_balance: float | None = None,
    ) -> ReflectionModel:
        crosstalk = np.eye(3) + rng.uniform(0.0, 0.15, (3, 3)) * (1 - np.eye(3))
        return cls(
            strength=float(rng.uniform(*STRENGTH_RANGE)) if strength is None else strength,
            delay_ms=float(rng.uniform(*DELAY_RANGE_MS)) if delay_ms is None else delay_ms,
            tau_ms=float(rng.uniform(5.0, 60.0)),
            crosstalk=crosstalk / crosstalk.sum(axis=1, keepdims=True),
            background_fraction=float(rng.uniform(0.0, 0.08)),
            white_balance=float(rng.uniform(0.0, 0.5)) if white_balance is None else white_balance,
            noise_levels=float(rng.uniform(0.5, 2.5)),
        )


def relight(
    frames_rgb: Sequence[np.ndarray],
    landmarks: Sequence[np.ndarray | None],
    steps: Sequence[FlashStep],
    start_ms: float,
    times_ms: Sequence[float],
    rng: np.random.Generator,
    model: ReflectionModel | None = None,
) -> list[np.ndarray]:
    """The frames as the camera would have seen them under the flashing screen (uint8 RGB, JPEG-encodable).

    ``landmarks``: the 68 points per frame from the service's FaceAnalyzer (None where no face was found: the last
    known head mask is used, or only the background floor).
    """
    model = model or ReflectionModel.draw(rng)
    light = screen_light(steps, start_ms, times_ms, model.delay_ms, model.tau_ms) @ model.crosstalk.T
    out: list[np.ndarray] = []
    mask: np.ndarray | None = None
    balance = np.ones(3)
    previous_time: float | None = None
    for frame, points, frame_light, time_ms in zip(frames_rgb, landmarks, light, times_ms, strict=True):
        if points is not None:
            mask = head_mask(frame.shape[:2], points)
        weight = np.full(frame.shape[:2], model.background_fraction, np.float32)
        if mask is not None:
            weight = np.maximum(weight, mask)
        linear = to_linear(frame)
        lit = linear * (1.0 + model.strength * weight[..., None] * frame_light[None, None, :].astype(np.float32))
        gain = lit.reshape(-1, 3).mean(axis=0) / np.maximum(linear.reshape(-1, 3).mean(axis=0), 1e-6)
        # Auto white balance / exposure follows the scene's colour gain with a lag of ~300 ms.
        follow = 1.0 if previous_time is None else 1.0 - np.exp(-(time_ms - previous_time) / 300.0)
        balance = balance + follow * (gain - balance)
        previous_time = time_ms
        lit = lit / (balance**model.white_balance)[None, None, :].astype(np.float32)
        encoded = to_srgb(lit) + rng.normal(0.0, model.noise_levels, lit.shape)
        out.append(np.clip(np.round(encoded), 0, 255).astype(np.uint8))
    return out


def _tint_factors(steps: Sequence[FlashStep], start_ms: float, times_ms: Sequence[float], lag_ms: float) -> np.ndarray:
    return screen_light(steps, start_ms, times_ms, lag_ms, tau_ms=1.0)


def global_tint(
    frames_rgb: Sequence[np.ndarray],
    steps: Sequence[FlashStep],
    start_ms: float,
    times_ms: Sequence[float],
    mode: str = "multiply",
    strength: float = 0.2,
    lag_ms: float = 60.0,
) -> list[np.ndarray]:
    """The attack: the whole frame tinted in step with the sequence, in sRGB values; ``multiply``: x (1 + strength x
    colour), ``add``: + strength x 255 x colour."""
    if mode not in ("multiply", "add"):
        raise ValueError(f"mode must be multiply or add, not {mode!r}")
    out = []
    for frame, colour in zip(frames_rgb, _tint_factors(steps, start_ms, times_ms, lag_ms), strict=True):
        values = frame.astype(np.float32)
        values = values * (1.0 + strength * colour) if mode == "multiply" else values + strength * 255.0 * colour
        out.append(np.clip(np.round(values), 0, 255).astype(np.uint8))
    return out


def box_tint(
    frames_rgb: Sequence[np.ndarray],
    boxes: Sequence[Box | None],
    steps: Sequence[FlashStep],
    start_ms: float,
    times_ms: Sequence[float],
    strength: float = 0.2,
    scale: float = 1.0,
    lag_ms: float = 60.0,
) -> list[np.ndarray]:
    """The attack: only the face box (scaled about its centre) multiplied by (1 + strength x colour), a hard edge."""
    out = []
    for frame, box, colour in zip(frames_rgb, boxes, _tint_factors(steps, start_ms, times_ms, lag_ms), strict=True):
        tinted = frame.copy()
        if box is not None:
            cx, cy = box.centre
            half_w, half_h = box.width * scale / 2, box.height * scale / 2
            top, bottom = max(0, round(cy - half_h)), min(frame.shape[0], round(cy + half_h))
            left, right = max(0, round(cx - half_w)), min(frame.shape[1], round(cx + half_w))
            region = frame[top:bottom, left:right].astype(np.float32) * (1.0 + strength * colour)
            tinted[top:bottom, left:right] = np.clip(np.round(region), 0, 255).astype(np.uint8)
        out.append(tinted)
    return out


def encode_jpeg(frames_rgb: Sequence[np.ndarray], quality: int = 85) -> list[bytes]:
    return [
        cv2.imencode(".jpg", np.ascontiguousarray(f[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        for f in frames_rgb
    ]


def decode_jpeg(jpegs: Sequence[bytes]) -> list[np.ndarray]:
    return [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for j in jpegs]
