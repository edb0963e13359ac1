"""Calibrate the planarity, synthetic-motion and frame-timing checks on the real clips and on injected stills
(offline tool).

Genuine: 20 frames at 10 fps (JPEG q85) from windows of the real clips in tests/data/video, as the browser samples
them. Attacks made from each window's first frame: a photo turned about its vertical axis (20-40 deg either way,
black or mirrored borders, with and without +-10 px / +-5 deg hand-held jitter), a photo only jiggled, a painted blink
(the window's own closed eyes pasted onto its first frame, where the window holds a blink; with jitter, with more
noise), a still with noise. Each is judged with the current settings.

    python -m liveness_service.tools.motion_calibrate [--out bench/results/motion_calibration.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from liveness_service.challenge import TURN_LEFT, TURN_RIGHT, judge_challenge
from liveness_service.config import Settings
from liveness_service.faces import FaceAnalyzer
from liveness_service.landmarks import eye_aspect_ratio, head_yaw_degrees
from liveness_service.motion import changes_from_first, judge_motion
from liveness_service.planarity import judge_planarity, planarity_residual, yaw_span
from liveness_service.sanity import frame_timing_problem
from liveness_service.tools import injection, reflection
from liveness_service.tools.video import sample_video

REPOSITORY = Path(__file__).resolve().parents[3]
WINDOWS = {
    "liveportrait/d9.mp4": [0, 3000, 4000, 6000, 9000, 12000, 14000],
    "liveportrait/d12.mp4": [0, 2000, 2500, 4000],
    "liveportrait/d18.mp4": [0, 2500, 4500],
    "retalking/2.mp4": [0, 2500],
}


def _measure(analyzer: FaceAnalyzer, frames: list[np.ndarray], settings: Settings) -> dict:
    frames = reflection.decode_jpeg(reflection.encode_jpeg(frames))
    seen = [analyzer.observe(f) for f in frames]
    landmarks, boxes = [s.landmarks for s in seen], [s.box for s in seen]
    yaws = [
        None if p is None else head_yaw_degrees(p, f.shape[1], f.shape[0])
        for p, f in zip(landmarks, frames, strict=True)
    ]
    ears = [None if p is None else eye_aspect_ratio(p) for p in landmarks]
    turns = {
        action: judge_challenge([action], ears, yaws, settings.challenge)[0].performed
        for action in (TURN_LEFT, TURN_RIGHT)
    }
    started = time.perf_counter()
    residual, planar = judge_planarity(landmarks, boxes, yaws, settings.planarity, turn_performed=any(turns.values()))
    planarity_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    static, synthetic = judge_motion(changes_from_first(frames, landmarks, boxes), settings.motion)
    motion_ms = (time.perf_counter() - started) * 1000
    return {
        "yaw_span": round(yaw_span(yaws), 1),
        "residual": None if residual is None else round(residual, 4),
        "residual_unjudged": round(planarity_residual(landmarks, boxes) or 0.0, 4),
        "planar": planar,
        "turn_performed": any(turns.values()),
        "static": static,
        "synthetic": synthetic,
        "planarity_ms": round(planarity_ms, 2),
        "motion_ms": round(motion_ms, 2),
    }


def _attacks(
    photo: np.ndarray, landmarks: np.ndarray, donor: tuple | None, rng: np.random.Generator
) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    for degrees in (20, 30, 40, -20, -30, -40):
        for border, border_name in ((cv2.BORDER_CONSTANT, "black"), (cv2.BORDER_REFLECT, "mirrored")):
            for jitter in (False, True):
                name = f"turned_{degrees}_{border_name}{'_jitter' if jitter else ''}"
                out[name] = injection.turned_photo(photo, degrees, rng, border=border, jitter=jitter)
    out["jiggled_photo"] = [injection.add_noise(injection.jiggle(photo, rng), rng, 2.0) for _ in range(20)]
    if donor is not None:  # the window holds a real blink: its closed eyes are pasted onto the first frame
        out["pasted_blink"] = injection.painted_blink(photo, landmarks, rng, donor=donor)
        out["pasted_blink_jitter"] = injection.painted_blink(photo, landmarks, rng, jitter=True, donor=donor)
        out["pasted_blink_noise8"] = injection.painted_blink(photo, landmarks, rng, noise=8.0, donor=donor)
    out["still_noise"] = [injection.add_noise(photo, rng, 8.0) for _ in range(15)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video-dir", type=Path, default=REPOSITORY / "tests" / "data" / "video")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "bench" / "results" / "motion_calibration.json")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    analyzer = FaceAnalyzer()
    rng = np.random.default_rng(0)
    genuine: list[dict] = []
    attacks: dict[str, list[dict]] = {}
    for clip, starts in WINDOWS.items():
        for start_ms in starts:
            jpegs, times = sample_video(args.video_dir / clip, fps=10.0, frames=20, start_ms=start_ms)
            frames = reflection.decode_jpeg(jpegs)
            row = {"clip": clip, "start_ms": start_ms} | _measure(analyzer, frames, settings)
            row["timing"] = frame_timing_problem(times, settings.nominal_fps, settings.sanity)
            genuine.append(row)
            seen = [analyzer.observe(f) for f in frames]
            ears = [eye_aspect_ratio(s.landmarks) if s.landmarks is not None else 1.0 for s in seen]
            closed = int(np.argmin(ears))
            donor = (frames[closed], seen[closed].landmarks) if ears[closed] < 0.7 * np.median(ears) else None
            for name, attacked in _attacks(frames[0], seen[0].landmarks, donor, rng).items():
                attacks.setdefault(name, []).append(
                    {"clip": clip, "start_ms": start_ms} | _measure(analyzer, attacked, settings)
                )
            print(f"{clip} @{start_ms}: {row}", flush=True)

    def caught(rows: list[dict], key: str) -> float:
        return round(sum(bool(r[key]) for r in rows) / len(rows), 3)

    turned = [r for name, rows in attacks.items() if name.startswith("turned") for r in rows]
    turned_judged = [r for r in turned if r["residual"] is not None]
    turned_passing = [r for r in turned if r["turn_performed"]]
    report = {
        "settings": {"planarity": vars(settings.planarity), "motion": vars(settings.motion)},
        "genuine": {
            "windows": len(genuine),
            "planar_refused": caught(genuine, "planar"),
            "static_refused": caught(genuine, "static"),
            "synthetic_refused": caught(genuine, "synthetic"),
            "timing_refused": caught(genuine, "timing"),
            "turn_windows_judged": sum(r["residual"] is not None for r in genuine),
            "residual_min_judged": min((r["residual"] for r in genuine if r["residual"] is not None), default=None),
        },
        "turned_photos": {
            "captures": len(turned),
            "judged": len(turned_judged),
            "caught_when_judged": caught(turned_judged, "planar") if turned_judged else None,
            "passing_a_turn_challenge": len(turned_passing),
            "caught_of_those": caught(turned_passing, "planar") if turned_passing else None,
            "residual_max": max((r["residual_unjudged"] for r in turned), default=None),
        },
        "attacks": {
            name: {key: caught(rows, key) for key in ("planar", "static", "synthetic")} | {"captures": len(rows)}
            for name, rows in attacks.items()
        },
        "cpu_ms": {
            "planarity_median": float(np.median([r["planarity_ms"] for r in genuine])),
            "motion_median": float(np.median([r["motion_ms"] for r in genuine])),
        },
        "genuine_rows": genuine,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "genuine_rows"}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
