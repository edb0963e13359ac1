"""Capture validation: frame count, type and size caps from the header, frame times."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage

from auth_web.uploads import CaptureError, parse_frame_times, read_frames
from faceauth_common.imaging import ImageLimits

LIMITS = ImageLimits(max_bytes=64 * 1024, max_pixels=1_000_000, max_frames=16)


def jpeg(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


def files(*payloads: bytes) -> list[FileStorage]:
    return [FileStorage(io.BytesIO(p), filename=f"frame-{i}.jpg") for i, p in enumerate(payloads)]


def test_valid_frames_pass_through() -> None:
    frames = read_frames(files(*[jpeg()] * 5), min_frames=5, max_frames=16, limits=LIMITS)
    assert len(frames) == 5 and frames[0][:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize(
    ("payloads", "reason"),
    [
        ([jpeg()] * 2, "TOO_FEW_FRAMES"),
        ([jpeg()] * 17, "TOO_MANY_FRAMES"),
        ([jpeg()] * 4 + [b"GIF89a not an image"], "FRAME_UNSUPPORTED_FORMAT"),
        ([jpeg()] * 4 + [b""], "FRAME_EMPTY"),
        ([jpeg()] * 4 + [jpeg(1200, 1000)], "FRAME_TOO_MANY_PIXELS"),
        ([jpeg()] * 4 + [b"\xff\xd8\xff" + b"\x00" * 70_000], "FRAME_TOO_LARGE"),
        ([jpeg()] * 4 + [b"\xff\xd8\xff\xe0 broken"], "FRAME_UNDECODABLE"),
    ],
)
def test_bad_captures_are_rejected_with_a_reason(payloads: list[bytes], reason: str) -> None:
    with pytest.raises(CaptureError) as caught:
        read_frames(files(*payloads), min_frames=3, max_frames=16, limits=LIMITS)
    assert caught.value.reason == reason


def test_frame_times() -> None:
    assert parse_frame_times(None, 3) == []
    assert parse_frame_times("", 3) == []
    assert parse_frame_times("[0, 166.6, 333]", 3) == [0, 167, 333]


@pytest.mark.parametrize(
    "raw", ["[0, 1]", "[0, 200, 100]", '["a", 1, 2]', "{}", "[-5, 0, 1]", "[0, 1, 1e12]", "nope", "[true, 1, 2]"]
)
def test_bad_frame_times(raw: str) -> None:
    with pytest.raises(CaptureError):
        parse_frame_times(raw, 3)
