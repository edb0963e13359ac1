"""The screen-flash challenge: a random sequence of saturated screen colours the page paints during the capture.

liveness-service checks that the face reflects it (light from the screen on the skin, not a tint of the frame).
The sequence is drawn here with a CSPRNG for each challenge, stored with it in Redis and sent to the browser only
when the challenge is issued, so a clip recorded or rendered before that cannot carry it.

Photosensitivity (WCAG 2.3.1, "Three Flashes or Below Threshold"): the page changes colour at most three times a
second, so no step is shorter than ``MIN_STEP_MS``; settings validation enforces it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

#: Saturated colours (0xRRGGBB): each moves the skin's chromaticity in its own direction.
PALETTE: tuple[int, ...] = (0xFF0000, 0x00FF00, 0x0000FF, 0x00FFFF, 0xFF00FF, 0xFFFF00)
#: WCAG 2.3.1: at most 3 changes per second, so every step lasts at least 1000/3 ms (rounded up).
MIN_STEP_MS = 334
#: The proto's ceiling on one step (FlashStep.duration_ms, liveness.proto).
MAX_STEP_MS = 2000
#: The capture runs this long past the sequence's end (the camera's lag, the page's last paint).
CAPTURE_TAIL_MS = 200
#: The page captures this long before it paints the first colour: frames in the room's own light, which the passive
#: check judges (its CNN takes a face lit by a saturated colour for a print's or a screen's colour cast: in the attack
#: suite it refused 6 of 60 simulated genuine captures lit all through). 3 frames at 10 fps.
LEAD_MS = 300


@dataclass(frozen=True)
class FlashStep:
    rgb: int  # 0xRRGGBB
    duration_ms: int

    @property
    def colour(self) -> str:
        """CSS notation, ``#rrggbb``."""
        return f"#{self.rgb:06x}"


@dataclass(frozen=True)
class FlashPolicy:
    """How sequences are drawn (AUTH_FLASH_* settings)."""

    steps: int = 4
    min_duration_ms: int = 340
    max_duration_ms: int = 450
    notice_ms: int = 1500


def random_sequence(policy: FlashPolicy) -> tuple[FlashStep, ...]:
    """``policy.steps`` colours from ``PALETTE``, never the same twice in a row, each lasting a random
    ``min_duration_ms``..``max_duration_ms`` (inclusive); drawn with ``secrets`` (a CSPRNG)."""
    steps: list[FlashStep] = []
    span = policy.max_duration_ms - policy.min_duration_ms + 1
    for _ in range(policy.steps):
        choices = [rgb for rgb in PALETTE if not steps or rgb != steps[-1].rgb]
        steps.append(FlashStep(secrets.choice(choices), policy.min_duration_ms + secrets.randbelow(span)))
    return tuple(steps)


def total_ms(steps: Sequence[FlashStep]) -> int:
    return sum(step.duration_ms for step in steps)


def capture_ms(sequence_ms: int) -> int:
    """How long the page films for a sequence of ``sequence_ms``: ``LEAD_MS`` unlit, then the sequence."""
    return LEAD_MS + sequence_ms


def frames_to_cover(duration_ms: int, fps: float) -> int:
    """Frames at ``fps`` whose span (first to last) covers ``duration_ms`` plus ``CAPTURE_TAIL_MS``."""
    return math.ceil((duration_ms + CAPTURE_TAIL_MS) * fps / 1000 - 1e-9) + 1


def to_payload(steps: Sequence[FlashStep]) -> list[list[int]]:
    """How a sequence is stored with its challenge (JSON)."""
    return [[step.rgb, step.duration_ms] for step in steps]


def from_payload(raw: object) -> tuple[FlashStep, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(FlashStep(int(rgb), int(duration)) for rgb, duration in raw)
