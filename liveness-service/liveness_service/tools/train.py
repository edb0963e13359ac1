"""python -m liveness_service.tools.train --data DIR: train the passive liveness CNN and write model + model card.

Pipeline: labelled images (see liveness_service.tools.dataset for layouts and the subject/session split) ->
HOG face box -> crop with context (box x2.7, 80x80, BGR) cached as .npz -> a small CNN with augmentation
(flips, shifts, zoom, brightness/contrast), class-balanced weights, early stopping on the validation split
-> TFLite file + JSON spec (threshold chosen on validation) + MODEL_CARD-style markdown next to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

import numpy as np

from liveness_service.tools import dataset, pad_metrics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INPUT_SIZE = 80
BOX_SCALE = 2.7


def build_cnn(input_size: int = INPUT_SIZE):  # type: ignore[no-untyped-def]
    """A small CNN: BGR 0..255 in, p(live) out; scaling and augmentation live inside the graph."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((input_size, input_size, 3), name="bgr")
    x = layers.Rescaling(1 / 255.0)(inputs)
    augment = tf.keras.Sequential(
        [
            layers.RandomFlip("horizontal"),
            layers.RandomTranslation(0.08, 0.08, fill_mode="reflect"),
            layers.RandomZoom(0.12, fill_mode="reflect"),
            layers.RandomBrightness(0.15, value_range=(0, 1)),
            layers.RandomContrast(0.2),
        ],
        name="augment",
    )
    x = augment(x)  # active only in training
    for filters in (16, 32, 64, 96):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.4)(x)
    live = layers.Dense(1, activation="sigmoid")(x)
    live = layers.Reshape(())(live)
    return tf.keras.Model(inputs, live, name="faceauth_pad_cnn")


def choose_threshold(
    live_scores: np.ndarray, attack_scores: dict[str, np.ndarray], target_apcer: float | None
) -> float:
    """On the validation split: the lowest threshold keeping every attack type's APCER <= target, or (target None)
    the one minimising max-APCER + BPCER."""
    if target_apcer is None:
        return pad_metrics.balanced_threshold(live_scores, attack_scores)
    return pad_metrics.threshold_for_apcer(attack_scores, target_apcer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path("var/liveness-model/pad_cnn.tflite"))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--target-apcer",
        type=float,
        help="choose the threshold for this APCER on validation (default: minimise max-APCER + BPCER there)",
    )
    parser.add_argument("--cache", type=Path, default=Path("var/liveness-cache"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
    samples = dataset.load_samples(args.data)
    counts = dataset.describe(samples)
    print("samples:", json.dumps(counts))
    crops, detected = dataset.load_crops(samples, INPUT_SIZE, BOX_SCALE, args.cache)
    labels = np.array([1.0 if s.live else 0.0 for s in samples], dtype=np.float32)
    split = np.array([s.split for s in samples])
    train, val, test = (split == "train"), (split == "val"), (split == "test")
    if not val.any():
        raise SystemExit("no validation samples: the split needs at least one validation group")
    positives = labels[train].mean()
    class_weight = {0: round(float(0.5 / (1 - positives)), 3), 1: round(float(0.5 / positives), 3)}

    model = build_cnn()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss="binary_crossentropy",
        metrics=[tf.keras.metrics.AUC(name="auc")],
    )
    stop = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    history = model.fit(
        crops[train].astype(np.float32),
        labels[train],
        validation_data=(crops[val].astype(np.float32), labels[val]),
        epochs=args.epochs,
        batch_size=args.batch_size,
        class_weight=class_weight,
        callbacks=[stop],
        verbose=2,
    )

    from liveness_service.passive import TFLiteScorer
    from liveness_service.tools.minifasnet import to_tflite

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(to_tflite(model))
    scorer = TFLiteScorer(args.out)
    scores = scorer.score(crops)

    def rates(mask: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        chosen = [(s, sc) for s, sc, m in zip(samples, scores, mask, strict=True) if m]
        live = np.array([sc for s, sc in chosen if s.live])
        attacks: dict[str, list[float]] = {}
        for s, sc in chosen:
            if not s.live:
                attacks.setdefault(s.attack_type, []).append(float(sc))
        return live, {k: np.array(v) for k, v in attacks.items()}

    val_live, val_attacks = rates(val)
    threshold = choose_threshold(val_live, val_attacks, args.target_apcer)
    val_report = pad_metrics.report(val_live, val_attacks, threshold)
    test_report = pad_metrics.report(*rates(test), threshold) if test.any() else None
    today = dt.date.today().isoformat()
    version = f"pad-cnn-{today}"
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "name": "faceauth PAD CNN",
                "version": version,
                "input_size": INPUT_SIZE,
                "box_scale": BOX_SCALE,
                "threshold": round(threshold, 6),
                "source": f"python -m liveness_service.tools.train --data {args.data}",
            },
            indent=2,
        )
        + "\n"
    )
    card = [
        f"# Model card: faceauth PAD CNN ({version})",
        "",
        f"- Trained {today} with `python -m liveness_service.tools.train --data {args.data}` (seed {args.seed}).",
        f"- Input: HOG face box scaled x{BOX_SCALE} about its centre, {INPUT_SIZE}x{INPUT_SIZE} BGR; "
        f"{len(detected) - sum(detected)} of {len(detected)} images had no HOG face and were used whole "
        "(pre-cropped faces).",
        f"- Samples per split: `{json.dumps(counts)}` (split by subject/session, never by frame).",
        f"- Epochs run: {len(history.history['loss'])} (early stopping on validation loss, "
        f"patience {args.patience}); class weights {class_weight}.",
        f"- Threshold {threshold:.4f}: "
        + (
            f"the lowest with every attack type's APCER <= {args.target_apcer:.0%} on validation."
            if args.target_apcer is not None
            else "minimises max-APCER + BPCER on validation."
        ),
        "",
        "## Validation",
        "",
        *[f"    {line}" for line in val_report.lines()],
    ]
    if test_report:
        card += ["", "## Held-out test", "", *[f"    {line}" for line in test_report.lines()]]
    args.out.with_suffix(".md").write_text("\n".join(card) + "\n")
    print("\n".join(card))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
