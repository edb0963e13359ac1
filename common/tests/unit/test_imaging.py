from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from faceauth_common.imaging import ImageError, ImageLimits, check_header, decode_frames, decode_image

LIMITS = ImageLimits(max_bytes=200_000, max_pixels=640 * 480, max_frames=3)


def encode(width: int, height: int, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(buffer, fmt)
    return buffer.getvalue()


def test_decodes_jpeg_and_png_to_rgb() -> None:
    for fmt in ("JPEG", "PNG"):
        pixels = decode_image(encode(64, 48, fmt), LIMITS)
        assert pixels.shape == (48, 64, 3) and pixels.dtype == np.uint8


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "EMPTY"),
        (b"GIF89a" + b"\0" * 100, "UNSUPPORTED_FORMAT"),
        (b"\xff\xd8\xff" + b"\0" * 50, "UNDECODABLE"),
        (b"x" * 200_001, "TOO_LARGE"),
    ],
)
def test_rejects_bad_bytes_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError) as caught:
        decode_image(data, LIMITS, index=2)
    assert caught.value.reason == reason
    assert str(caught.value).startswith("image 2: ")


def test_pixel_cap_is_checked_from_the_header_before_decoding() -> None:
    # A PNG of a huge blank canvas compresses to a few kB: the classic decompression bomb.
    bomb = encode(5000, 5000, "PNG")
    assert len(bomb) < LIMITS.max_bytes
    with pytest.raises(ImageError) as caught:
        check_header(bomb, LIMITS)
    assert caught.value.reason == "TOO_MANY_PIXELS"


def test_truncated_jpeg_is_undecodable() -> None:
    data = encode(320, 240)
    with pytest.raises(ImageError) as caught:
        decode_image(data[: len(data) // 2], LIMITS)
    assert caught.value.reason == "UNDECODABLE"


def test_capture_frame_count_limits() -> None:
    with pytest.raises(ImageError) as caught:
        decode_frames([], LIMITS)
    assert caught.value.reason == "NO_FRAMES"
    with pytest.raises(ImageError) as caught:
        decode_frames([encode(8, 8)] * 4, LIMITS)
    assert caught.value.reason == "TOO_MANY_FRAMES"
    assert len(decode_frames([encode(8, 8)] * 3, LIMITS)) == 3
