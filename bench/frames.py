"""Webcam-like frames from the real videos in ../shared/data/video, prepared like the browser does.

The browser's default capture (auth-web ``CaptureSettings``) is 640×480 JPEG at quality 0.85, sampled at 6 fps,
unmirrored. The clips have other sizes (512×480, 512×512, ...), so each frame is scaled to *cover* 640×480 and
centre-cropped — what a webcam's 4:3 sensor crop looks like — then JPEG-encoded with OpenCV at quality 85.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
VIDEO_ROOT = REPO_ROOT.parent / "shared" / "data" / "video"

CAPTURE_WIDTH = 640
CAPTURE_HEIGHT = 480
CAPTURE_FPS = 6.0
JPEG_QUALITY = 85

#: The clip the benchmarks use by default: a man facing the camera with several blinks (MIT repo).
DEFAULT_CLIP = "liveportrait/d9.mp4"


@dataclass(frozen=True)
class Frame:
    jpeg: bytes
    time_ms: int  # presentation time in the clip, milliseconds
    index: int  # index among the sampled frames


def _cover_crop(image: np.ndarray, width: int, height: int) -> np.ndarray:
    scale = max(width / image.shape[1], height / image.shape[0])
    scaled_w = max(width, round(image.shape[1] * scale))
    scaled_h = max(height, round(image.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (scaled_w, scaled_h), interpolation=interpolation)
    top = (scaled_h - height) // 2
    left = (scaled_w - width) // 2
    return scaled[top : top + height, left : left + width]


def clip_path(clip: str) -> Path:
    path = Path(clip)
    if not path.is_absolute():
        path = VIDEO_ROOT / clip
    if not path.is_file():
        raise FileNotFoundError(f"no video at {path}")
    return path


def load_clip(
    clip: str = DEFAULT_CLIP,
    fps: float = CAPTURE_FPS,
    width: int = CAPTURE_WIDTH,
    height: int = CAPTURE_HEIGHT,
    quality: int = JPEG_QUALITY,
) -> list[Frame]:
    """Decode ``clip`` and keep one frame per 1/fps seconds, as 640×480 JPEGs (BGR decoded, encoded as JPEG)."""
    capture = cv2.VideoCapture(str(clip_path(clip)))
    if not capture.isOpened():
        raise RuntimeError(f"OpenCV cannot open {clip}")
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames: list[Frame] = []
    next_slot = 0
    source_index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            exact_ms = source_index * 1000.0 / source_fps
            source_index += 1
            # Keep the source frame nearest each 1/fps tick (within half a source frame).
            if exact_ms < next_slot * 1000.0 / fps - 500.0 / source_fps:
                continue
            time_ms = round(exact_ms)
            next_slot += 1
            cropped = _cover_crop(image, width, height)
            ok, encoded = cv2.imencode(".jpg", cropped, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for frame {source_index} of {clip}")
            frames.append(Frame(jpeg=encoded.tobytes(), time_ms=time_ms, index=len(frames)))
    finally:
        capture.release()
    if not frames:
        raise RuntimeError(f"{clip} yielded no frames")
    return frames


def windows(frames: list[Frame], size: int, stride: int) -> list[list[Frame]]:
    """Consecutive ``size``-frame windows (a capture of size/fps seconds), every ``stride`` frames."""
    return [frames[start : start + size] for start in range(0, len(frames) - size + 1, stride)]


def relative_times(window: list[Frame]) -> list[int]:
    """Capture times from the window's first frame, as the browser sends them (frame_times_ms)."""
    return [frame.time_ms - window[0].time_ms for frame in window]


def decode_rgb(frame: Frame) -> np.ndarray:
    """The frame as an RGB uint8 array (what face_recognition expects)."""
    bgr = cv2.imdecode(np.frombuffer(frame.jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def describe(frames: list[Frame]) -> dict[str, object]:
    sizes = [len(frame.jpeg) for frame in frames]
    return {
        "frames": len(frames),
        "width": CAPTURE_WIDTH,
        "height": CAPTURE_HEIGHT,
        "fps": CAPTURE_FPS,
        "jpeg_quality": JPEG_QUALITY,
        "jpeg_bytes_mean": round(sum(sizes) / len(sizes)),
        "jpeg_bytes_max": max(sizes),
        "duration_ms": frames[-1].time_ms - frames[0].time_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Prepare bench frames from a clip and describe them.")
    parser.add_argument("--clip", default=DEFAULT_CLIP, help="path under ../shared/data/video or absolute")
    parser.add_argument("--dump", type=Path, help="write the JPEGs into this folder (to look at them)")
    args = parser.parse_args()
    frames = load_clip(args.clip)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        for frame in frames:
            (args.dump / f"{frame.index:04d}_{frame.time_ms:06d}ms.jpg").write_bytes(frame.jpeg)
    print(json.dumps({"clip": args.clip, **describe(frames)}, indent=2))


if __name__ == "__main__":
    main()
