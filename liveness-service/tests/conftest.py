"""Shared fixtures for the liveness tests: webcam-like frames from the real videos in tests/data, recaptured
("attack") copies of them made at test time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

CAPTURE_SIZE = (640, 480)


@dataclass(frozen=True)
class Capture:
    jpegs: list[bytes]
    times_ms: list[int]

    def rgb(self) -> list[np.ndarray]:
        return [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for j in self.jpegs]


def capture_from_video(path: Path, fps: float = 6.0, frames: int = 10, start_ms: float = 0.0) -> Capture:
    """Frames sampled like the browser sends them: every 1/fps s, scaled to cover 640x480, JPEG quality 85."""
    video = cv2.VideoCapture(str(path))
    source_fps = video.get(cv2.CAP_PROP_FPS) or 30.0
    wanted = [start_ms + k * 1000.0 / fps for k in range(frames)]
    jpegs: list[bytes] = []
    times: list[int] = []
    index = 0
    while len(jpegs) < frames:
        ok, image = video.read()
        if not ok:
            break
        time_ms = index * 1000.0 / source_fps
        index += 1
        if time_ms + 500.0 / source_fps < wanted[len(jpegs)]:
            continue
        scale = max(CAPTURE_SIZE[0] / image.shape[1], CAPTURE_SIZE[1] / image.shape[0])
        scaled = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
        top = (scaled.shape[0] - CAPTURE_SIZE[1]) // 2
        left = (scaled.shape[1] - CAPTURE_SIZE[0]) // 2
        cropped = scaled[top : top + CAPTURE_SIZE[1], left : left + CAPTURE_SIZE[0]]
        jpegs.append(cv2.imencode(".jpg", cropped, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        times.append(round(time_ms))
    video.release()
    assert len(jpegs) == frames, f"{path} is too short for {frames} frames at {fps} fps from {start_ms} ms"
    return Capture(jpegs, [t - times[0] for t in times])


@pytest.fixture(scope="session")
def video_dir(test_data: Path) -> Path:
    """tests/data/video (MIT and Apache-2.0 clips)."""
    return test_data / "video"


@pytest.fixture(scope="session")
def d9_capture(video_dir: Path) -> Capture:
    # 0.0-1.5 s of d9.mp4 holds a full blink (eyes closed ~0.33-0.6 s), facing the camera.
    return capture_from_video(video_dir / "liveportrait" / "d9.mp4", fps=6.0, frames=10)


@pytest.fixture(scope="session")
def sample_capture():
    """``capture_from_video`` as a fixture (test modules cannot import this conftest by name)."""
    return capture_from_video


def recapture(image_bgr: np.ndarray) -> np.ndarray:
    """A stand-in presentation attack made from a live frame: what photographing a print or a screen does to it
    (detail lost to resampling and blur, a screen's moiré, lower contrast, a colour cast). The repository may not
    ship real attack images (NUAA, apfol_replay: no redistribution); tests that need an "attack" class to exercise
    code use these, and never claim accuracy on them."""
    height, width = image_bgr.shape[:2]
    small = cv2.resize(image_bgr, (max(1, width // 3), max(1, height // 3)), interpolation=cv2.INTER_AREA)
    image = cv2.GaussianBlur(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), (5, 5), 1.5)
    rows, columns = np.mgrid[0:height, 0:width]
    moire = 12.0 * np.sin(2 * np.pi * (columns * np.cos(0.3) + rows * np.sin(0.3)) / 3.7)
    degraded = (image.astype(np.float32) * 0.8 + 30.0 + moire[..., None]) * np.array([1.12, 0.95, 1.0], np.float32)
    return np.clip(degraded, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def recaptured():
    """``recapture`` as a fixture."""
    return recapture
