"""Shared fixtures for the liveness tests: webcam-like frames from the real videos in tests/data, recaptured
("attack") copies of them made at test time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from liveness_service.flash import FlashStep
from liveness_service.tools import reflection
from liveness_service.tools.video import sample_video


@dataclass(frozen=True)
class Capture:
    jpegs: list[bytes]
    times_ms: list[int]

    def rgb(self) -> list[np.ndarray]:
        return [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for j in self.jpegs]


def capture_from_video(path: Path, fps: float = 6.0, frames: int = 10, start_ms: float = 0.0) -> Capture:
    """Frames sampled like the browser sends them: every 1/fps s, scaled to cover 640x480, JPEG quality 85."""
    try:
        jpegs, times = sample_video(path, fps, frames, start_ms)
    except ValueError as error:
        raise AssertionError(str(error)) from error
    return Capture(jpegs, times)


@dataclass(frozen=True)
class FlashedCapture(Capture):
    """A capture relit by the reflection simulator as if the page had painted ``flash`` from ``flash_start_ms``."""

    flash: list[FlashStep] = field(default_factory=list)
    flash_start_ms: float = 0.0

    def flash_proto(self) -> dict:
        """The CheckRequest fields for the sequence."""
        from faceauth.liveness.v1 import liveness_pb2

        steps = [liveness_pb2.FlashStep(rgb=s.rgb, duration_ms=s.duration_ms) for s in self.flash]
        return {"flash": steps, "flash_start_ms": round(self.flash_start_ms)}


def flash_capture(
    capture: Capture, seed: int = 0, flash: list[FlashStep] | None = None, relit: bool = True, **model: float
) -> FlashedCapture:
    """``capture`` lit by a random (or the given) colour sequence covering it; ``relit=False``: the sequence is
    attached but the frames are left as they are (no reflection). ``model``: ReflectionModel.draw's overrides."""
    rng = np.random.default_rng(seed)
    if flash is None:
        span = capture.times_ms[-1] - capture.times_ms[0] + 200
        flash = reflection.random_sequence(rng, steps=(4, 4), duration_ms=(max(340, span // 4), max(340, span // 4)))
    frames = capture.rgb()
    if relit:
        landmarks = [_analyzer().observe(f).landmarks for f in frames]
        drawn = reflection.ReflectionModel.draw(rng, **model)
        frames = reflection.relight(frames, landmarks, flash, -50.0, capture.times_ms, rng, drawn)
    return FlashedCapture(reflection.encode_jpeg(frames), list(capture.times_ms), list(flash), -50.0)


_analyzers: list = []


def _analyzer():  # type: ignore[no-untyped-def]
    if not _analyzers:
        from liveness_service.faces import FaceAnalyzer

        _analyzers.append(FaceAnalyzer())
    return _analyzers[0]


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


@pytest.fixture(scope="session")
def flashed():
    """``flash_capture`` as a fixture."""
    return flash_capture


@pytest.fixture(scope="session")
def d9_flashed(d9_capture: Capture) -> FlashedCapture:
    """d9_capture under a four-colour flash sequence, as a genuine user's camera would see it (mid-range strength)."""
    return flash_capture(d9_capture, seed=3, strength=0.3)


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
