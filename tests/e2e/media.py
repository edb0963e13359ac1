"""Real videos → Y4M files for Chromium's fake webcam (``--use-file-for-fake-video-capture``), made at test time.

Chromium plays a Y4M file at the frame rate in its header and starts again at the end. The browser captures at
its own moment (once the face has been well placed for 0.5 s), so the frames it takes start at a random point
of the loop. Each clip is therefore a short stretch chosen so that *every* capture window contains the action
it is used for, played forwards then backwards ("ping-pong") so that the loop has no jump a liveness check
would call a broken face track. A still clip repeats one frame: a photo held to the camera, digitally.

The files are large (~460 kB per 640x480 frame) and live in a temporary folder; never commit them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480


@dataclass(frozen=True)
class Clip:
    """Frames [first, last] of ``source`` (relative to tests/data), looped as described above."""

    name: str
    source: str
    first: int
    last: int
    still: bool = False  # repeat frame ``first`` (``last`` is ignored)
    still_frames: int = 30

    def frames(self, test_data: Path) -> tuple[list[np.ndarray], Fraction]:
        capture = cv2.VideoCapture(str(test_data / self.source))
        if not capture.isOpened():
            raise FileNotFoundError(test_data / self.source)
        fps = Fraction(capture.get(cv2.CAP_PROP_FPS) or 30.0).limit_denominator(1001)
        wanted_last = self.first if self.still else self.last
        picked: list[np.ndarray] = []
        index = 0
        while index <= wanted_last:
            ok, image = capture.read()
            if not ok:
                break
            if index >= self.first:
                picked.append(letterbox(image))
            index += 1
        capture.release()
        if len(picked) != wanted_last - self.first + 1:
            raise ValueError(f"{self.source} has no frames {self.first}..{wanted_last}")
        if self.still:
            return picked * self.still_frames, fps
        # Forwards, then backwards without repeating the turning points: a seamless loop.
        return picked + picked[-2:0:-1], fps

    def write_y4m(self, test_data: Path, folder: Path) -> Path:
        frames, fps = self.frames(test_data)
        path = folder / f"{self.name}.y4m"
        write_y4m(path, frames, fps)
        return path


def letterbox(image: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Scale a BGR frame to fit ``width`` x ``height`` and pad with black (what a 4:3 webcam frame would show)."""
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def write_y4m(path: Path, frames: list[np.ndarray], fps: Fraction) -> None:
    """YUV4MPEG2, 4:2:0 with JPEG chroma siting: a header line, then ``FRAME\\n`` + the Y, U and V planes."""
    if not frames:
        raise ValueError("a Y4M file needs at least one frame")
    height, width = frames[0].shape[:2]
    if width % 2 or height % 2:
        raise ValueError("4:2:0 needs an even width and height")
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps.numerator}:{fps.denominator} Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise ValueError("every frame must have the same size")
            # I420: the full-size Y plane, then the quarter-size U and V planes, as one (h*3/2, w) array.
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
