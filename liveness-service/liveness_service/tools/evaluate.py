"""python -m liveness_service.tools.evaluate --model M --data DIR: ISO/IEC 30107-3 error rates and a DET plot.

Reports APCER per attack type and their maximum, BPCER at the model's threshold, BPCER at APCER = 1 % and
5 %, ROC AUC, and saves a DET curve (APCER vs BPCER per attack type) as PNG. By default it scores the
held-out ``test`` split of DIR (see liveness_service.tools.dataset for layouts and splits).
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


def score_split(model_path: Path, samples: list[dataset.Sample], cache_dir: Path | None) -> np.ndarray:
    from liveness_service.passive import ModelSpec, TFLiteScorer

    spec = ModelSpec.for_model(model_path)
    crops, _ = dataset.load_crops(samples, spec.input_size, spec.box_scale, cache_dir)
    return TFLiteScorer(model_path).score(crops)


def split_scores(samples: list[dataset.Sample], scores: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    live = np.array([s for s, sample in zip(scores, samples, strict=True) if sample.live])
    by_type: dict[str, list[float]] = {}
    for score, sample in zip(scores, samples, strict=True):
        if not sample.live:
            by_type.setdefault(sample.attack_type, []).append(float(score))
    return live, {kind: np.array(values) for kind, values in by_type.items()}


def save_det_plot(live: np.ndarray, attacks: dict[str, np.ndarray], threshold: float, title: str, out: Path) -> None:
    import matplotlib  # dev-only dependency, imported lazily so the service image does not need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0.0, 1.0, 1001)
    figure, axis = plt.subplots(figsize=(5.5, 5))
    pooled = {"all attacks": np.concatenate(list(attacks.values())), **attacks} if len(attacks) > 1 else attacks
    for kind, scores in pooled.items():
        apcers = [pad_metrics.apcer(scores, t) for t in grid]
        bpcers = [pad_metrics.bpcer(live, t) for t in grid]
        axis.plot(
            np.array(apcers) * 100, np.array(bpcers) * 100, label=f"{kind} (n={len(scores)})", drawstyle="steps-post"
        )
    axis.scatter(
        [pad_metrics.apcer(np.concatenate(list(attacks.values())), threshold) * 100],
        [pad_metrics.bpcer(live, threshold) * 100],
        marker="o",
        color="black",
        zorder=5,
        label=f"threshold {threshold:.3f}",
    )
    axis.set_xlabel("APCER (%)")
    axis.set_ylabel("BPCER (%)")
    axis.set_xlim(-1, 101)
    axis.set_ylim(-1, 101)
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help=".tflite model (with its .json beside it)")
    parser.add_argument("--data", required=True, type=Path, help="dataset directory")
    parser.add_argument("--split", default="test", choices=[*dataset.SPLITS, "all"])
    parser.add_argument("--threshold", type=float, help="decision threshold (default: the model's own)")
    parser.add_argument("--plot", type=Path, help="DET plot PNG (default: <model>.<split>.det.png)")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--cache", type=Path, default=Path("var/liveness-cache"), help="face-crop cache directory")
    args = parser.parse_args(argv)

    from liveness_service.passive import ModelSpec

    spec = ModelSpec.for_model(args.model)
    samples = [s for s in dataset.load_samples(args.data) if args.split == "all" or s.split == args.split]
    if not samples or all(s.live for s in samples) or not any(s.live for s in samples):
        print(f"split {args.split!r} needs both live and attack samples", file=sys.stderr)
        return 2
    scores = score_split(args.model, samples, args.cache)
    live, attacks = split_scores(samples, scores)
    threshold = spec.threshold if args.threshold is None else args.threshold
    result = pad_metrics.report(live, attacks, threshold)
    print(f"model {spec.name} {spec.version} on {args.data} split={args.split}")
    print("\n".join(result.lines()))
    plot = args.plot or args.model.with_name(f"{args.model.stem}.{args.split}.det.png")
    save_det_plot(live, attacks, threshold, f"{spec.name} on {args.data.name} ({args.split})", plot)
    print(f"DET plot: {plot}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": spec.name,
                    "version": spec.version,
                    "split": args.split,
                    "threshold": threshold,
                    "live": result.live_count,
                    "attacks": result.attack_counts,
                    "apcer": result.apcer_by_type,
                    "apcer_max": result.apcer_max,
                    "bpcer": result.bpcer,
                    "bpcer_at_apcer": {
                        f"{k:.2f}": {"threshold": t, "bpcer": b} for k, (t, b) in result.bpcer_at_apcer.items()
                    },
                    "auc": result.auc,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
