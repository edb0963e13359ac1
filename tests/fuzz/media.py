"""Image bytes for the fuzzers: small valid JPEG/PNG frames, and every kind of broken one."""

from __future__ import annotations

import functools
import struct
import zlib

import cv2
import numpy as np
from hypothesis import strategies as st


@functools.cache
def valid_images() -> tuple[bytes, ...]:
    """Small real images (solid, gradient, noise; grey and colour; JPEG and PNG): cheap to decode and detect."""
    rng = np.random.default_rng(13)
    images = []
    for width, height in ((16, 16), (64, 48), (160, 120), (33, 7)):
        gradient = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
        for pixels in (
            np.full((height, width, 3), (40, 90, 200), np.uint8),
            cv2.merge([gradient, gradient[::-1], gradient]),
            rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            gradient,  # one channel
        ):
            images.append(cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
            images.append(cv2.imencode(".png", pixels)[1].tobytes())
    rgba = np.dstack([np.full((24, 24, 3), 128, np.uint8), np.full((24, 24), 200, np.uint8)])
    images.append(cv2.imencode(".png", rgba)[1].tobytes())
    images.append(cv2.imencode(".png", np.full((20, 20), 40000, np.uint16))[1].tobytes())  # 16-bit PNG
    return tuple(images)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG whose header claims any size (decompression bombs, zero sizes) over a tiny body."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A JPEG whose SOF0 claims any size, with nothing decodable after it."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


NASTY_HEADERS = (
    b"",
    b"\xff",
    b"\xff\xd8",
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a\x01\x00\x01\x00\x00\x00\x00",
    b"BM" + b"\x00" * 60,
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"%PDF-1.7\n",
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    b"\x00" * 128,
)


def image_bytes() -> st.SearchStrategy[bytes]:
    """One frame: valid, truncated, bit-flipped, spliced, claiming absurd sizes, or plain garbage."""
    valid = st.sampled_from(valid_images())

    def mutate(args: tuple[bytes, int, bytes]) -> bytes:
        data, position, patch = args
        position %= len(data) + 1
        return data[:position] + patch + data[position + len(patch) :]

    return st.one_of(
        valid,
        valid.flatmap(lambda data: st.integers(0, len(data)).map(lambda cut: data[:cut])),  # truncated
        st.tuples(valid, st.integers(0, 10_000), st.binary(min_size=1, max_size=16)).map(mutate),
        st.builds(
            png_claiming,
            st.sampled_from([0, 1, 65_535, 100_000, 2**31 - 1, 2**32 - 1]),
            st.sampled_from([0, 1, 3_000, 65_535, 2**31 - 1]),
            st.sampled_from([1, 8, 16, 3, 0]),
            st.sampled_from([0, 2, 3, 4, 6, 7]),
        ),
        st.builds(jpeg_claiming, st.sampled_from([0, 1, 8_000, 65_535]), st.sampled_from([0, 1, 8_000, 65_535])),
        st.sampled_from(NASTY_HEADERS),
        st.binary(max_size=512),
        st.sampled_from(NASTY_HEADERS[2:5]).flatmap(lambda head: st.binary(max_size=256).map(lambda tail: head + tail)),
    )
