"""CPU cost of the second passive model: a whole Check and its passive stage, MiniFASNetV2 alone vs both fused.

Frames: d9.mp4 as the browser sends them (bench.frames: 640x480 JPEG q85), 20 per Check (the login capture's size),
checks ``sanity,passive,active`` (the flash check's cost does not depend on the passive model). The two engines are
loaded side by side in one process and called alternately, so a busy neighbour on a shared machine slows both alike;
CPU time is this thread's (``time.thread_time``), the cost on an idle core.

    .venv/bin/python bench/passive_cost.py [--repeats 30] [--out bench/results/passive_cost_contended]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.frames import load_clip  # noqa: E402
from faceauth_common.imaging import decode_frames  # noqa: E402
from liveness_service.config import Settings  # noqa: E402
from liveness_service.verdict import LivenessEngine  # noqa: E402

FRAMES = 20
VARIANTS = {"minifasnet_v2": "MiniFASNetV2 alone", "silent_face_fused": "MiniFASNetV2 + MiniFASNetV1SE fused"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "passive_cost_contended")
    args = parser.parse_args(argv)
    clip = load_clip()[:FRAMES]
    jpegs = [frame.jpeg for frame in clip]
    times = [frame.time_ms for frame in clip]
    engines = {
        name: LivenessEngine.load(
            Settings.from_env({"LIVENESS_CHECKS": "sanity,passive,active", "LIVENESS_PASSIVE_MODEL": name})
        )
        for name in VARIANTS
    }
    samples: dict[str, dict[str, list[float]]] = {
        name: {"check_cpu_ms": [], "check_wall_ms": [], "passive_cpu_ms": [], "passive_wall_ms": []}
        for name in VARIANTS
    }
    for _ in range(args.repeats):
        for name, engine in engines.items():
            images = decode_frames(jpegs, engine.settings.limits)
            cpu, wall = time.thread_time(), time.perf_counter()
            verdict = engine.check(images, ["BLINK"], times)
            samples[name]["check_cpu_ms"].append((time.thread_time() - cpu) * 1000)
            samples[name]["check_wall_ms"].append((time.perf_counter() - wall) * 1000)
            boxes = [f.detected_box for f in verdict.frames if f.detected_box is not None]
            faces = [image for image, f in zip(images, verdict.frames, strict=True) if f.detected_box is not None]
            cpu, wall = time.thread_time(), time.perf_counter()
            engine.passive.score(faces, boxes)
            samples[name]["passive_cpu_ms"].append((time.thread_time() - cpu) * 1000)
            samples[name]["passive_wall_ms"].append((time.perf_counter() - wall) * 1000)
    summary = {
        name: {
            key: {"median": round(float(np.median(v)), 2), "p95": round(float(np.percentile(v, 95)), 2)}
            for key, v in values.items()
        }
        for name, values in samples.items()
    }
    extra = {
        key: round(summary["silent_face_fused"][key]["median"] - summary["minifasnet_v2"][key]["median"], 2)
        for key in ("check_cpu_ms", "passive_cpu_ms")
    }
    result = {
        "frames_per_check": FRAMES,
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared with other engineers' jobs (contended)",
        "variants": summary,
        "second_model_extra_cpu_ms_per_check": extra,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# CPU cost of the second passive model (`bench/passive_cost.py`)",
        "",
        f"{FRAMES} frames per Check (d9, 640x480), checks sanity+passive+active, {args.repeats} calls each, the two",
        f"engines alternated in one process; {result['machine']}. Medians (p95) in ms.",
        "",
        "| passive model | Check CPU | Check wall | passive stage CPU | passive stage wall |",
        "|---|---|---|---|---|",
    ]
    for name, label in VARIANTS.items():
        row = summary[name]
        cells = [
            f"{row[k]['median']:.1f} ({row[k]['p95']:.1f})"
            for k in ("check_cpu_ms", "check_wall_ms", "passive_cpu_ms", "passive_wall_ms")
        ]
        lines.append(f"| {label} (`{name}`) | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"The second model adds {extra['passive_cpu_ms']:.1f} ms CPU to the passive stage per {FRAMES}-frame Check "
        f"({extra['check_cpu_ms']:.1f} ms measured on the whole Check, which also carries the detector's noise).",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
