"""python -m liveness_service.tools.evaluate --model M --data DIR: ISO/IEC 30107-3 error rates and a DET plot.

Reports APCER per attack type and their maximum, BPCER at the model's threshold, BPCER at APCER = 0 %, 1 % and
5 %, ROC AUC, and saves a DET curve (APCER vs BPCER per attack type) as PNG. By default it scores the
held-out ``test`` split of DIR (see liveness_service.tools.dataset for layouts and splits). ``--model`` is a passive
spec as LIVENESS_PASSIVE_MODEL takes it (a shipped name such as ``minifasnet_v2`` or ``silent_face_fused``, or a
path to a spec .json or a .tflite); repeated, every model is reported and the DET plot compares them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from liveness_service.tools import dataset, pad_metrics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def score_split(spec, samples: list[dataset.Sample], cache_dir: Path | None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """p(live) per sample for a PassiveSpec: each member on its own context crop, averaged as the service does."""
    return member_scores(spec, samples, cache_dir).mean(axis=1)


def member_scores(spec, samples: list[dataset.Sample], cache_dir: Path | None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """p(live) per sample and member, (N, members)."""
    from liveness_service.passive import ModelSpec, TFLiteScorer

    columns = []
    for member in spec.members:
        member_spec = ModelSpec.for_model(member)
        crops, _ = dataset.load_crops(samples, member_spec.input_size, member_spec.box_scale, cache_dir)
        columns.append(TFLiteScorer(member).score(crops))
    return np.stack(columns, axis=1)


def split_scores(samples: list[dataset.Sample], scores: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    live = np.array([s for s, sample in zip(scores, samples, strict=True) if sample.live])
    by_type: dict[str, list[float]] = {}
    for score, sample in zip(scores, samples, strict=True):
        if not sample.live:
            by_type.setdefault(sample.attack_type, []).append(float(score))
    return live, {kind: np.array(values) for kind, values in by_type.items()}


def save_det_plot(live: np.ndarray, attacks: dict[str, np.ndarray], threshold: float, title: str, out: Path) -> None:
    save_det_comparison({"": (live, attacks, threshold)}, title, out)


def save_det_comparison(
    models: dict[str, tuple[np.ndarray, dict[str, np.ndarray], float]], title: str, out: Path
) -> None:
    """DET curves (APCER vs BPCER) per attack type (and pooled) for each model, its operating point marked."""
    import matplotlib  # dev-only dependency, imported lazily so the service image does not need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.unique(np.concatenate([np.linspace(0.0, 1.0, 1001), *[_all_scores(m[0], m[1]) for m in models.values()]]))
    figure, axis = plt.subplots(figsize=(5.5, 5))
    for index, (label, (live, attacks, threshold)) in enumerate(models.items()):
        prefix = f"{label}: " if label else ""
        pooled = {"all attacks": np.concatenate(list(attacks.values())), **attacks} if len(attacks) > 1 else attacks
        bpcers = np.array([pad_metrics.bpcer(live, t) for t in grid]) * 100
        for kind, scores in pooled.items():
            apcers = np.array([pad_metrics.apcer(scores, t) for t in grid]) * 100
            axis.plot(
                apcers,
                bpcers,
                label=f"{prefix}{kind} (n={len(scores)})",
                drawstyle="steps-post",
                linestyle=("-", "--", ":", "-.")[index % 4],
            )
        axis.scatter(
            [pad_metrics.apcer(np.concatenate(list(attacks.values())), threshold) * 100],
            [pad_metrics.bpcer(live, threshold) * 100],
            marker="os^D"[index % 4],
            color="black",
            zorder=5,
            label=f"{prefix}threshold {threshold:.3f}",
        )
    axis.set_xlabel("APCER (%)")
    axis.set_ylabel("BPCER (%)")
    axis.set_xlim(-1, 101)
    axis.set_ylim(-1, 101)
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def _all_scores(live: np.ndarray, attacks: dict[str, np.ndarray]) -> np.ndarray:
    """Every score and the next float above it: the thresholds where a curve steps, so no step is drawn off-grid."""
    scores = np.concatenate([live, *attacks.values()]).astype(np.float64)
    return np.clip(np.concatenate([scores, np.nextafter(scores, np.inf)]), 0.0, 1.0)


def report_json(spec, split: str, threshold: float, result: pad_metrics.Report) -> dict:  # type: ignore[no-untyped-def]
    return {
        "model": spec.name,
        "version": spec.version,
        "split": split,
        "threshold": threshold,
        "live": result.live_count,
        "attacks": result.attack_counts,
        "apcer": result.apcer_by_type,
        "apcer_max": result.apcer_max,
        "bpcer": result.bpcer,
        "bpcer_at_apcer": {f"{k:.2f}": {"threshold": t, "bpcer": b} for k, (t, b) in result.bpcer_at_apcer.items()},
        "auc": result.auc,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", required=True, action="append", help="passive spec: shipped name or .json/.tflite path (repeatable)"
    )
    parser.add_argument("--data", required=True, type=Path, help="dataset directory")
    parser.add_argument("--split", default="test", choices=[*dataset.SPLITS, "all"])
    parser.add_argument("--threshold", type=float, help="decision threshold (default: each model's own)")
    parser.add_argument("--plot", type=Path, help="DET plot PNG (default: <first model>.<split>.det.png)")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here (one model only)")
    parser.add_argument("--cache", type=Path, default=Path("var/liveness-cache"), help="face-crop cache directory")
    args = parser.parse_args(argv)

    from liveness_service.passive import PassiveSpec, resolve_spec

    if args.json and len(args.model) > 1:
        print("--json takes one --model", file=sys.stderr)
        return 2
    samples = [s for s in dataset.load_samples(args.data) if args.split == "all" or s.split == args.split]
    if not samples or all(s.live for s in samples) or not any(s.live for s in samples):
        print(f"split {args.split!r} needs both live and attack samples", file=sys.stderr)
        return 2
    curves: dict[str, tuple[np.ndarray, dict[str, np.ndarray], float]] = {}
    for value in args.model:
        spec_path = resolve_spec(value)
        spec = PassiveSpec.load(spec_path)
        live, attacks = split_scores(samples, score_split(spec, samples, args.cache))
        threshold = spec.threshold if args.threshold is None else args.threshold
        result = pad_metrics.report(live, attacks, threshold, targets=(0.0, 0.01, 0.05))
        print(f"model {spec.name} {spec.version} on {args.data} split={args.split}")
        print("\n".join(result.lines()))
        curves[spec.name] = (live, attacks, threshold)
        if args.json:
            args.json.write_text(json.dumps(report_json(spec, args.split, threshold, result), indent=2) + "\n")
    first = resolve_spec(args.model[0])
    plot = args.plot or first.with_name(f"{first.stem}.{args.split}.det.png")
    if len(curves) == 1:
        [(name, (live, attacks, threshold))] = curves.items()
        save_det_plot(live, attacks, threshold, f"{name} on {args.data.name} ({args.split})", plot)
    else:
        save_det_comparison(curves, f"{' vs '.join(curves)} on {args.data.name} ({args.split})", plot)
    print(f"DET plot: {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
