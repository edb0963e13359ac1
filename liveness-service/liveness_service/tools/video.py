"""Webcam-like captures from a video file: frames sampled as the browser sends them (offline tool; tests, benches)."""

from __future__ import annotations

from pathlib import Path

import cv2

CAPTURE_SIZE = (640, 480)


def sample_video(
    path: Path, fps: float = 6.0, frames: int = 10, start_ms: float = 0.0, quality: int = 85
) -> tuple[list[bytes], list[int]]:
    """Every 1/fps s from start_ms, scaled to cover 640x480 and centre-cropped, JPEG at ``quality``; with the frame
    times in ms from the first. Raises ValueError when the video is too short."""
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
        jpegs.append(cv2.imencode(".jpg", cropped, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
        times.append(round(time_ms))
    video.release()
    if len(jpegs) != frames:
        raise ValueError(f"{path} is too short for {frames} frames at {fps} fps from {start_ms} ms")
    return jpegs, [t - times[0] for t in times]
