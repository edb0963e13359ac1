"""Encoded image bytes -> validated RGB pixels, with the size caps checked before full decoding."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 2 * 1024 * 1024
    max_pixels: int = 4_000_000
    max_frames: int = 16


class ImageError(ValueError):
    """An input image was rejected; ``reason`` is a stable code, the message is for people."""

    def __init__(self, reason: str, message: str, index: int | None = None) -> None:
        prefix = f"image {index}: " if index is not None else ""
        super().__init__(prefix + message)
        self.reason = reason
        self.index = index


def sniff_format(data: bytes) -> str | None:
    """``"JPEG"``, ``"PNG"`` or ``None`` from the magic bytes alone."""
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    if data.startswith(PNG_MAGIC):
        return "PNG"
    return None


def check_header(data: bytes, limits: ImageLimits, index: int | None = None) -> tuple[int, int]:
    """Validate type, byte size and pixel count from the header only; returns (width, height)."""
    if not data:
        raise ImageError("EMPTY", "is empty", index)
    if len(data) > limits.max_bytes:
        raise ImageError("TOO_LARGE", f"is {len(data)} bytes, the limit is {limits.max_bytes}", index)
    if sniff_format(data) is None:
        raise ImageError("UNSUPPORTED_FORMAT", "is not a JPEG or PNG image", index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise ImageError("TOO_MANY_PIXELS", "has too many pixels", index) from None
    except Exception:
        raise ImageError("UNDECODABLE", "could not be decoded", index) from None
    if width <= 0 or height <= 0:
        raise ImageError("UNDECODABLE", "has no pixels", index)
    if width * height > limits.max_pixels:
        raise ImageError(
            "TOO_MANY_PIXELS", f"is {width}x{height} pixels, the limit is {limits.max_pixels} pixels", index
        )
    return width, height


def decode_image(data: bytes, limits: ImageLimits, index: int | None = None) -> np.ndarray:
    """Decode JPEG/PNG bytes to an ``(H, W, 3)`` uint8 RGB array, honouring EXIF orientation."""
    check_header(data, limits, index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                return np.asarray(upright.convert("RGB"))
    except ImageError:
        raise
    except Exception:
        raise ImageError("UNDECODABLE", "could not be decoded (truncated or corrupt)", index) from None


def decode_frames(frames: Sequence[bytes], limits: ImageLimits) -> list[np.ndarray]:
    """Decode a whole capture, rejecting it if it is empty, too long, or any frame is bad."""
    if not frames:
        raise ImageError("NO_FRAMES", "no images were sent")
    if len(frames) > limits.max_frames:
        raise ImageError("TOO_MANY_FRAMES", f"{len(frames)} images were sent, the limit is {limits.max_frames}")
    return [decode_image(data, limits, index) for index, data in enumerate(frames)]
