"""Validation of a posted capture: multipart ``frames`` files and the ``frame_times_ms`` JSON list."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from faceauth_common.imaging import ImageError, ImageLimits, check_header

MAX_FRAME_TIME_MS = 120_000
FLASH_START_PATTERN = re.compile(r"-?[0-9]{1,9}")


class CaptureError(ValueError):
    """The capture is unusable; the message is safe to show to the user."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Capture:
    frames: list[bytes]
    frame_times_ms: list[int]


def read_frames(files: Sequence[FileStorage], *, min_frames: int, max_frames: int, limits: ImageLimits) -> list[bytes]:
    """Frame bytes, each checked from its header (JPEG/PNG, byte and pixel caps) before anything decodes it."""
    if len(files) < min_frames:
        raise CaptureError(
            "TOO_FEW_FRAMES",
            _("The capture needs at least %(count)s frames; got %(got)s.", count=min_frames, got=len(files)),
        )
    if len(files) > max_frames:
        raise CaptureError(
            "TOO_MANY_FRAMES", _("At most %(count)s frames may be sent; got %(got)s.", count=max_frames, got=len(files))
        )
    frames = []
    for index, file in enumerate(files):
        # Read one byte past the cap, so an oversized frame is detected without reading all of it.
        data = file.stream.read(limits.max_bytes + 1)
        try:
            check_header(data, limits, index)
        except ImageError as error:
            # The image's own problem ("is not a JPEG or PNG image") comes from faceauth_common, in English.
            rejected = _("Frame %(number)s was rejected: %(problem)s.", number=index + 1, problem=str(error))
            raise CaptureError(f"FRAME_{error.reason}", rejected) from None
        frames.append(data)
    return frames


def parse_frame_times(raw: str | None, frame_count: int) -> list[int]:
    """Empty, or one non-decreasing integer millisecond offset per frame."""
    if raw is None or raw.strip() == "":
        return []
    try:
        values = json.loads(raw)
    except (ValueError, RecursionError):
        raise CaptureError("BAD_FRAME_TIMES", _("frame_times_ms must be a JSON list of numbers.")) from None
    if not isinstance(values, list) or len(values) != frame_count:
        raise CaptureError("BAD_FRAME_TIMES", _("frame_times_ms must have one value per frame."))
    times: list[int] = []
    for value in values:
        # NaN and ±Infinity parse (Python's json accepts them) but are no times; round(inf) would raise.
        finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
        if isinstance(value, bool) or not finite:
            raise CaptureError("BAD_FRAME_TIMES", _("frame_times_ms must contain finite numbers only."))
        millis = round(value)
        if millis < 0 or millis > MAX_FRAME_TIME_MS or (times and millis < times[-1]):
            raise CaptureError("BAD_FRAME_TIMES", _("frame_times_ms must be non-decreasing offsets within 2 minutes."))
        times.append(millis)
    return times


def parse_flash_start(raw: str | None) -> int:
    """``flash_start_ms``: an integer (may be negative: painted before the first frame), within 2 minutes."""
    text = (raw or "").strip()
    if not text:
        raise CaptureError("BAD_FLASH_START", _("flash_start_ms is required with a screen-flash challenge."))
    if not FLASH_START_PATTERN.fullmatch(text):
        raise CaptureError("BAD_FLASH_START", _("flash_start_ms must be an integer number of milliseconds."))
    value = int(text)
    if abs(value) > MAX_FRAME_TIME_MS:
        raise CaptureError("BAD_FLASH_START", _("flash_start_ms must be within 2 minutes of the first frame."))
    return value
