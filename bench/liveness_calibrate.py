"""Calibrate the liveness challenge and sanity thresholds on the real videos, sampled like the browser.

Every source frame of each clip is turned into a 640x480 JPEG (q85, bench.frames) and measured once (HOG box,
68 landmarks, eye aspect ratio, yaw, face patch). Captures are then simulated at several capture settings
(fps x frames) from EVERY start offset in the clip, and the liveness domain functions are run on them:
- blink: detection rate among the captures during which the full-rate video shows a blink (ground truth from
  all source frames of that time span), and false "blinks" where the full-rate video shows none;
- turns: share of captures passing TURN_LEFT / TURN_RIGHT (d12 turns its head; the others should not pass);
- sanity: the largest track jump / face difference in natural captures vs. spliced captures (two clips).

    .venv/bin/python bench/liveness_calibrate.py [--out bench/results/liveness_calibration.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.frames import decode_rgb, load_clip
from liveness_service.challenge import ChallengeThresholds, judge_challenge
from liveness_service.faces import FaceAnalyzer
from liveness_service.landmarks import eye_aspect_ratio, head_yaw_degrees
from liveness_service.sanity import colour_changes, colour_signature, face_patch, patch_differences, track_jumps

CLIPS = [
    "liveportrait/d9.mp4",
    "liveportrait/d12.mp4",
    "liveportrait/d18.mp4",
    "retalking/1.mp4",
    "retalking/2.mp4",
    "seed/real_1.mp4",
]
SETTINGS = [(6.0, 10), (6.0, 15), (10.0, 15), (10.0, 16), (15.0, 16)]


def measure(clip: str, analyzer: FaceAnalyzer, max_frames: int) -> dict[str, list]:
    frames = load_clip(clip, fps=1000.0)[:max_frames]  # every source frame
    out: dict[str, list] = {"time_ms": [], "ear": [], "yaw": [], "box": [], "patch": [], "colour": [], "faces": []}
    for frame in frames:
        rgb = decode_rgb(frame)
        seen = analyzer.observe(rgb)
        out["time_ms"].append(frame.time_ms)
        out["faces"].append(seen.face_count)
        out["box"].append(seen.box)
        out["patch"].append(face_patch(rgb, seen.box) if seen.box else None)
        out["colour"].append(colour_signature(rgb, seen.box) if seen.box else None)
        if seen.landmarks is None:
            out["ear"].append(None)
            out["yaw"].append(None)
        else:
            out["ear"].append(eye_aspect_ratio(seen.landmarks))
            out["yaw"].append(head_yaw_degrees(seen.landmarks, rgb.shape[1], rgb.shape[0]))
    return out


def capture_indices(times: list[int], start: int, fps: float, count: int) -> list[int] | None:
    """Source frames nearest each 1/fps tick from ``start``; None when the clip ends first."""
    picked = []
    for k in range(count):
        target = times[start] + k * 1000.0 / fps
        index = int(np.searchsorted(times, target))
        if index >= len(times):
            return None
        if index > 0 and abs(times[index - 1] - target) <= abs(times[index] - target):
            index -= 1
        picked.append(index)
    return picked


def full_rate_blink(ears: list, thresholds: ChallengeThresholds) -> bool:
    return judge_challenge(["BLINK"], ears, [None] * len(ears), thresholds)[0].performed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/liveness_calibration.json"))
    parser.add_argument("--max-source-frames", type=int, default=600)
    args = parser.parse_args()
    analyzer = FaceAnalyzer()
    thresholds = ChallengeThresholds()
    measured = {clip: measure(clip, analyzer, args.max_source_frames) for clip in CLIPS}
    results: dict[str, object] = {"thresholds": thresholds.__dict__, "clips": {}}
    for clip, m in measured.items():
        valid_ears = [e for e in m["ear"] if e is not None]
        valid_yaws = [y for y in m["yaw"] if y is not None]
        per_clip: dict[str, object] = {
            "source_frames": len(m["time_ms"]),
            "faceless_frames": sum(1 for c in m["faces"] if c == 0),
            "multi_face_frames": sum(1 for c in m["faces"] if c > 1),
            "ear_p5_p50_p95": [round(float(np.percentile(valid_ears, q)), 3) for q in (5, 50, 95)],
            "yaw_min_max": [round(min(valid_yaws), 1), round(max(valid_yaws), 1)],
        }
        for fps, count in SETTINGS:
            blink_truth = blink_caught = false_blinks = no_truth = 0
            turn_left = turn_right = captures = 0
            jumps, diffs, colours = [], [], []
            for start in range(len(m["time_ms"])):
                picked = capture_indices(m["time_ms"], start, fps, count)
                if picked is None:
                    break
                captures += 1
                ears = [m["ear"][i] for i in picked]
                yaws = [m["yaw"][i] for i in picked]
                span = m["ear"][picked[0] : picked[-1] + 1]
                truth = full_rate_blink(span, thresholds)
                caught = judge_challenge(["BLINK"], ears, yaws, thresholds)[0].performed
                blink_truth += truth
                blink_caught += truth and caught
                no_truth += not truth
                false_blinks += caught and not truth
                turn_left += judge_challenge(["TURN_LEFT"], ears, yaws, thresholds)[0].performed
                turn_right += judge_challenge(["TURN_RIGHT"], ears, yaws, thresholds)[0].performed
                jumps += [j[0] for j in track_jumps([m["box"][i] for i in picked]) if j is not None]
                diffs += [d for d in patch_differences([m["patch"][i] for i in picked]) if d is not None]
                colours += [c for c in colour_changes([m["colour"][i] for i in picked]) if c is not None]
            per_clip[f"{fps:g}fps_x{count}"] = {
                "captures": captures,
                "captures_with_blink_at_full_rate": blink_truth,
                "blink_detection_rate": round(blink_caught / blink_truth, 3) if blink_truth else None,
                "false_blink_rate": round(false_blinks / no_truth, 3) if no_truth else None,
                "turn_left_pass_rate": round(turn_left / captures, 3) if captures else None,
                "turn_right_pass_rate": round(turn_right / captures, 3) if captures else None,
                "track_jump_p99_max": [round(float(np.percentile(jumps, 99)), 3), round(max(jumps), 3)]
                if jumps
                else None,
                "colour_change_p99_max": [round(float(np.percentile(colours, 99)), 3), round(max(colours), 3)]
                if colours
                else None,
                "face_difference_p1_p99_max": [round(float(np.percentile(diffs, q)), 2) for q in (1, 99, 100)]
                if diffs
                else None,
            }
        results["clips"][clip] = per_clip  # type: ignore[index]
    # Spliced captures: the last frame of one clip followed by the first of another (6 fps sampling).
    spliced = []
    for a in CLIPS:
        for b in CLIPS:
            if a == b:
                continue
            ma, mb = measured[a], measured[b]
            ia = max(i for i, box in enumerate(ma["box"]) if box is not None)
            ib = min(i for i, box in enumerate(mb["box"]) if box is not None)
            jump = track_jumps([ma["box"][ia], mb["box"][ib]])[1]
            diff = patch_differences([ma["patch"][ia], mb["patch"][ib]])[1]
            colour = colour_changes([ma["colour"][ia], mb["colour"][ib]])[1]
            spliced.append(
                {
                    "from": a,
                    "to": b,
                    "jump": round(jump[0], 3),
                    "scale": round(jump[1], 2),
                    "difference": round(diff, 2),
                    "colour_change": round(colour, 3),
                }
            )
    results["spliced_pairs"] = spliced
    results["spliced_colour_change_min"] = min(s["colour_change"] for s in spliced)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
