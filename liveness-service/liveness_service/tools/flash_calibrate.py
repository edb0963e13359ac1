"""Calibrate the flash check on simulated genuine captures and the tint attacks (offline tool).

Genuine: webcam-like captures (20 frames at 10 fps, JPEG q85) of the real clips in tests/data/video, relit by the
reflection simulator (tools/reflection.py) with a random colour sequence and a model drawn per seed (strength over
the simulator's whole range, lag 0-250 ms, crosstalk, white balance, noise). Attacks on the same captures: no
reflection (the capture as it is: a replayed clip), a global tint (multiplied and added, several strengths) and a tint
of the face box (several strengths and box scales). Every variant is re-encoded as JPEG and its faces are found again
by the service's FaceAnalyzer, as the service would.

    python -m liveness_service.tools.flash_calibrate [--seeds 8] [--out bench/results/flash_calibration.json]

Prints BPCER (genuine refused) and the acceptance of each attack with the current settings (LIVENESS_FLASH_*), the
distribution of each statistic per class, and the CPU time of the flash measurement and judgement per capture.
The numbers measure the check against the simulator's model of the physics, not against real webcams.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from liveness_service.config import Settings
from liveness_service.faces import FaceAnalyzer
from liveness_service.flash import FlashOutcome, judge_flash, measure_capture
from liveness_service.tools import reflection
from liveness_service.tools.video import sample_video

REPOSITORY = Path(__file__).resolve().parents[3]
CLIPS = {
    "liveportrait/d9.mp4": [0, 3000, 6000, 9000, 12000, 15000],
    "liveportrait/d12.mp4": [0, 2000, 4000],
    "liveportrait/d18.mp4": [0, 2500, 4500],
    "retalking/2.mp4": [0, 2500],
}
ATTACKS: dict[str, Callable] = {
    "no_reflection": lambda frames, boxes, steps, start, times: frames,
    **{
        f"global_{mode}_{strength}": (
            lambda frames, boxes, steps, start, times, mode=mode, strength=strength: reflection.global_tint(
                frames, steps, start, times, mode, strength
            )
        )
        for mode, strengths in (("multiply", (0.1, 0.2, 0.4)), ("add", (0.05, 0.1, 0.2)))
        for strength in strengths
    },
    **{
        f"box_{scale}_{strength}": (
            lambda frames, boxes, steps, start, times, scale=scale, strength=strength: reflection.box_tint(
                frames, boxes, steps, start, times, strength, scale
            )
        )
        for scale in (1.0, 1.1)
        for strength in (0.1, 0.2, 0.4)
    },
}
STATISTICS = ("score", "face_gain", "background_ratio", "edge_ratio", "lag_ms")


def _judge(analyzer: FaceAnalyzer, frames, times, steps, start, settings: Settings) -> tuple[FlashOutcome, float]:
    frames = reflection.decode_jpeg(reflection.encode_jpeg(frames))
    seen = [analyzer.observe(f) for f in frames]
    started = time.perf_counter()
    landmarks, boxes = [s.landmarks for s in seen], [s.box for s in seen]
    samples = measure_capture(frames, landmarks, boxes, settings.flash.background_scale)
    outcome = judge_flash(samples, times, steps, start, settings.flash)
    return outcome, (time.perf_counter() - started) * 1000


def _statistics(outcome: FlashOutcome) -> dict:
    return {name: round(float(getattr(outcome, name)), 3) for name in STATISTICS}


def _summary(outcomes: list[FlashOutcome]) -> dict:
    out: dict = {"cases": len(outcomes), "accepted": sum(o.reflected for o in outcomes)}
    out["acceptance"] = round(out["accepted"] / max(len(outcomes), 1), 4)
    for name in STATISTICS:
        values = np.array([getattr(o, name) for o in outcomes], np.float64)
        out[name] = {q: round(float(np.percentile(values, p)), 3) for q, p in (("p5", 5), ("p50", 50), ("p95", 95))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="random sequences/models per capture")
    parser.add_argument("--video-dir", type=Path, default=REPOSITORY / "tests" / "data" / "video")
    parser.add_argument("--cases", action="store_true", help="also write every case's statistics")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "bench" / "results" / "flash_calibration.json")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    analyzer = FaceAnalyzer()
    genuine: list[FlashOutcome] = []
    by_strength: dict[str, list[FlashOutcome]] = {}
    attacks: dict[str, list[FlashOutcome]] = {name: [] for name in ATTACKS}
    refused: list[dict] = []
    accepted: list[dict] = []
    cpu_ms: list[float] = []
    cases: list[dict] = []
    for clip, starts in CLIPS.items():
        for start_ms in starts:
            jpegs, times = sample_video(args.video_dir / clip, fps=10.0, frames=20, start_ms=start_ms)
            frames = reflection.decode_jpeg(jpegs)
            seen = [analyzer.observe(f) for f in frames]
            for seed in range(args.seeds):
                rng = np.random.default_rng([seed, start_ms, len(clip)])
                steps = reflection.random_sequence(rng)
                flash_start = float(rng.uniform(-60.0, 30.0))
                model = reflection.ReflectionModel.draw(rng)
                lit = reflection.relight(frames, [s.landmarks for s in seen], steps, flash_start, times, rng, model)
                outcome, cost = _judge(analyzer, lit, times, steps, flash_start, settings)
                cpu_ms.append(cost)
                genuine.append(outcome)
                cases.append(
                    {
                        "class": "genuine",
                        "clip": clip,
                        "start_ms": start_ms,
                        "seed": seed,
                        "strength": model.strength,
                        "delay_ms": model.delay_ms,
                    }
                    | _statistics(outcome)
                    | {"covered_steps": outcome.covered_steps}
                )
                band = f"{0.1 * int(model.strength * 10):.1f}"
                by_strength.setdefault(band, []).append(outcome)
                if not outcome.reflected:
                    refused.append(
                        {"clip": clip, "start_ms": start_ms, "seed": seed, "strength": round(model.strength, 3)}
                        | _statistics(outcome)
                        | {"detail": outcome.detail}
                    )
                for name, attack in ATTACKS.items():
                    attacked = attack(frames, [s.box for s in seen], steps, flash_start, times)
                    outcome = _judge(analyzer, attacked, times, steps, flash_start, settings)[0]
                    attacks[name].append(outcome)
                    cases.append(
                        {"class": name, "clip": clip, "start_ms": start_ms, "seed": seed}
                        | _statistics(outcome)
                        | {"covered_steps": outcome.covered_steps}
                    )
                    if outcome.reflected:
                        accepted.append(
                            {"attack": name, "clip": clip, "start_ms": start_ms, "seed": seed} | _statistics(outcome)
                        )
            passed = sum(o.reflected for o in genuine)
            print(f"{clip} @{start_ms} ms: {passed}/{len(genuine)} genuine passed", flush=True)
    report = {
        "settings": {k: v for k, v in vars(settings.flash).items()},
        "simulator": {"strength_range": reflection.STRENGTH_RANGE, "delay_range_ms": reflection.DELAY_RANGE_MS},
        "captures": sum(len(s) for s in CLIPS.values()),
        "seeds": args.seeds,
        "genuine": {**_summary(genuine), "bpcer": round(1 - _summary(genuine)["acceptance"], 4)},
        "genuine_by_strength": {band: _summary(o)["acceptance"] for band, o in sorted(by_strength.items())},
        "genuine_refused": refused,
        "attacks": {name: _summary(o) for name, o in attacks.items()},
        "attacks_accepted": accepted,
        "cpu_ms_per_capture": {"median": round(float(np.median(cpu_ms)), 2), "max": round(float(np.max(cpu_ms)), 2)},
    }
    brief = {k: v for k, v in report.items() if k not in ("genuine_refused", "attacks_accepted", "attacks")}
    print(json.dumps(brief, indent=1))
    if args.cases:
        report["cases"] = cases
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    worst = max(a["acceptance"] for a in report["attacks"].values())
    print(f"BPCER {report['genuine']['bpcer']:.3f}, worst attack acceptance {worst:.3f} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
