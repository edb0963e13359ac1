"""Verification accuracy on labelled pairs: distances, FMR/FNMR, thresholds.

    python -m recognition_service.tools.evaluate PAIRS.csv [PAIRS2.csv ...] [--folders DIR] [--out results.json]

A pairs file has the columns ``file_x,file_y,same`` (1 = same person, 0 = different; other columns
are ignored); image paths are relative to the CSV's folder. ``--folders DIR`` adds every pair of a
folder-per-person tree (e.g. lfw10/images). Each image is encoded once with the enrollment settings;
pairs with an image that yields no usable face are counted and left out of the rates.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recognition_service.config import Settings
from recognition_service.engine import FaceEngine, FaceStatus
from recognition_service.tools.images import IMAGE_SUFFIXES, load_image_file

TARGET_FMRS = (1e-1, 1e-2, 1e-3)


@dataclass(frozen=True)
class Pair:
    left: Path
    right: Path
    same: bool
    source: str


def read_pairs_csv(path: Path) -> list[Pair]:
    pairs = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            pairs.append(
                Pair(path.parent / row["file_x"], path.parent / row["file_y"], row["same"].strip() == "1", path.name)
            )
    return pairs


def folder_pairs(root: Path) -> list[Pair]:
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [Pair(a, b, a.parent == b.parent, f"{root.name}/all-pairs") for a, b in itertools.combinations(images, 2)]


def rates(same: np.ndarray, different: np.ndarray, threshold: float) -> tuple[float, float]:
    """(FMR, FNMR) when a distance <= threshold counts as a match."""
    fmr = float(np.mean(different <= threshold)) if different.size else float("nan")
    fnmr = float(np.mean(same > threshold)) if same.size else float("nan")
    return fmr, fnmr


def threshold_at_fmr(different: np.ndarray, target: float) -> float | None:
    """The largest threshold whose FMR is <= target; None when the set is too small to tell.

    With n different-person pairs the smallest non-zero FMR is 1/n, so a target below 1/n cannot
    be resolved (a threshold with zero false matches is then only an upper bound on FMR ~ 3/n).
    """
    n = different.size
    if n == 0 or target < 1.0 / n:
        return None
    allowed = int(np.floor(target * n))  # false matches allowed
    ordered = np.sort(different)
    # Any threshold below the (allowed+1)-th smallest different-pair distance has <= allowed matches.
    return float(np.nextafter(ordered[allowed], -np.inf)) if allowed < n else float(ordered[-1])


def distribution(values: np.ndarray) -> dict[str, float | int]:
    if not values.size:
        return {"count": 0}
    percentiles = np.percentile(values, [1, 5, 25, 50, 75, 95, 99])
    return {
        "count": int(values.size),
        "mean": round(float(values.mean()), 4),
        "std": round(float(values.std()), 4),
        "min": round(float(values.min()), 4),
        **{f"p{p}": round(float(v), 4) for p, v in zip((1, 5, 25, 50, 75, 95, 99), percentiles, strict=True)},
        "max": round(float(values.max()), 4),
    }


def histogram(same: np.ndarray, different: np.ndarray, width: float = 0.05) -> list[dict[str, float | int]]:
    edges = np.arange(0.0, 1.2 + width, width)
    same_counts, _ = np.histogram(same, edges)
    different_counts, _ = np.histogram(different, edges)
    return [
        {"from": round(float(lo), 2), "to": round(float(hi), 2), "same": int(s), "different": int(d)}
        for lo, hi, s, d in zip(edges[:-1], edges[1:], same_counts, different_counts, strict=True)
        if s or d
    ]


def evaluate(pairs: list[Pair], engine: FaceEngine, settings: Settings, threshold: float, progress: bool) -> dict:
    files = sorted({p.left for p in pairs} | {p.right for p in pairs})
    embeddings: dict[Path, np.ndarray] = {}
    failures: dict[str, str] = {}
    started = time.perf_counter()
    for index, path in enumerate(files):
        try:
            image = load_image_file(path)
        except (OSError, ValueError) as error:
            failures[str(path)] = f"BAD_IMAGE: {error}"
            continue
        observation = engine.encode(image, settings.encode_detection, settings.quality)
        if observation.status is FaceStatus.OK and observation.embedding is not None:
            embeddings[path] = observation.embedding
        else:
            failures[str(path)] = observation.status.value
        if progress:
            print(f"\rencoded {index + 1}/{len(files)}", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    encode_seconds = time.perf_counter() - started

    same, different, skipped = [], [], 0
    for pair in pairs:
        if pair.left not in embeddings or pair.right not in embeddings:
            skipped += 1
            continue
        distance = float(np.linalg.norm(embeddings[pair.left] - embeddings[pair.right]))
        (same if pair.same else different).append(distance)
    same_array, different_array = np.asarray(same), np.asarray(different)

    fmr, fnmr = rates(same_array, different_array, threshold)
    candidates = np.unique(np.concatenate([same_array, different_array]))
    best = max(candidates, key=lambda t: -sum(rates(same_array, different_array, float(t))), default=threshold)
    best_fmr, best_fnmr = rates(same_array, different_array, float(best))
    n_pairs = same_array.size + different_array.size
    at_fmr = {}
    for target in TARGET_FMRS:
        at = threshold_at_fmr(different_array, target)
        at_fmr[f"{target:g}"] = (
            {"threshold": round(at, 4), "fnmr": round(rates(same_array, different_array, at)[1], 4)}
            if at is not None
            else {
                "threshold": None,
                "fnmr": None,
                "note": f"needs >= {int(np.ceil(1 / target))} different-person pairs, have {different_array.size}",
            }
        )
    zero_fm_threshold = float(np.nextafter(different_array.min(), -np.inf)) if different_array.size else None
    return {
        "pairs_used": int(n_pairs),
        "pairs_skipped": skipped,
        "images": len(files),
        "images_without_usable_face": failures,
        "encode_seconds_per_image": round(encode_seconds / max(1, len(files)), 3),
        "same": distribution(same_array),
        "different": distribution(different_array),
        "histogram": histogram(same_array, different_array),
        "at_threshold": {
            "threshold": threshold,
            "accuracy": round(1 - (fmr * different_array.size + fnmr * same_array.size) / max(1, n_pairs), 4),
            "fmr": round(fmr, 4),
            "fnmr": round(fnmr, 4),
        },
        "best_accuracy": {
            "threshold": round(float(best), 4),
            "accuracy": round(1 - (best_fmr * different_array.size + best_fnmr * same_array.size) / max(1, n_pairs), 4),
            "fmr": round(best_fmr, 4),
            "fnmr": round(best_fnmr, 4),
        },
        "at_target_fmr": at_fmr,
        "zero_false_match_threshold": None if zero_fm_threshold is None else round(zero_fm_threshold, 4),
        "fnmr_at_zero_false_match": None
        if zero_fm_threshold is None
        else round(rates(same_array, different_array, zero_fm_threshold)[1], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recognition_service.tools.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("pairs", nargs="*", type=Path, help="CSV files with file_x,file_y,same")
    parser.add_argument("--folders", type=Path, action="append", default=[], help="folder-per-person tree")
    parser.add_argument("--threshold", type=float, help="decision threshold (default: RECOGNITION_MATCH_THRESHOLD)")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.pairs and not args.folders:
        parser.error("give at least one pairs CSV or --folders DIR")
    settings = Settings.from_env()
    threshold = settings.match.threshold if args.threshold is None else args.threshold
    engine = FaceEngine.load(
        settings.detector,
        settings.num_jitters,
        descriptor=settings.descriptor,
        descriptor_threads=settings.descriptor_threads,
    )
    sets = {str(path): read_pairs_csv(path) for path in args.pairs}
    sets.update({f"{path} (all pairs)": folder_pairs(path) for path in args.folders})
    report = {
        "model_version": engine.model_version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpu": platform.processor()},
        "sets": {},
    }
    for name, pairs in sets.items():
        report["sets"][name] = evaluate(pairs, engine, settings, threshold, not args.quiet)
        result = report["sets"][name]
        print(
            f"{name}: {result['pairs_used']} pairs; accuracy {result['at_threshold']['accuracy']} at {threshold}; "
            f"best {result['best_accuracy']['accuracy']} at {result['best_accuracy']['threshold']}; "
            f"same median {result['same'].get('p50')}, different median {result['different'].get('p50')}; "
            f"at FMR: {json.dumps(result['at_target_fmr'])}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
