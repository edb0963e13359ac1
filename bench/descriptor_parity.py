"""Parity of the TFLite face descriptor with dlib's on real faces: per component, per pair, per decision.

    .venv/bin/python -m bench.descriptor_parity [--faces ../shared/data/faces] [--limit N]

Every face dlib's HOG detector finds (one upsampling step) in the photos under ``--faces`` and in the
repository's tests/data (photos, and 4 frames of each clip) is cut as dlib's own 150x150 chip
(``dlib.get_face_chip``, 5 landmarks, padding 0.25: what ``compute_face_descriptor(image, landmarks)`` does
inside) and embedded by both ``compute_face_descriptor`` (dlib-bin) and the TFLite port
(``recognition_service.descriptor.TFLiteDescriptor``). Reported: max |difference| per component, the
largest change of a pair distance over all pairs, and every pair whose match decision (distance <=
RECOGNITION_MATCH_THRESHOLD) or same-person decision (<= RECOGNITION_MAX_INTRA_DISTANCE) differs.
Writes bench/results/descriptor_parity.json and .md; exits 1 when a decision changes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench import report
from recognition_service.config import Settings
from recognition_service.descriptor import DEFAULT_MODEL_PATH, DlibDescriptor, TFLiteDescriptor
from recognition_service.engine import model_paths
from recognition_service.tools.descriptor_chips import VIDEO_SUFFIXES, chips_from_images, repository_test_images
from recognition_service.tools.images import IMAGE_SUFFIXES

REPOSITORY = Path(__file__).resolve().parents[1]


def pair_distances(embeddings: np.ndarray) -> np.ndarray:
    """Distances of every pair i < j (float64)."""
    upper = np.triu_indices(len(embeddings), k=1)
    differences = embeddings[:, None, :] - embeddings[None, :, :]
    return np.linalg.norm(differences, axis=-1)[upper]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=REPOSITORY.parent / "shared" / "data" / "faces")
    parser.add_argument("--limit", type=int, help="stop after this many chips")
    parser.add_argument("--note", default="", help="stored with the result (e.g. what else ran)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    shared = sorted(
        p for p in args.faces.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
    )
    paths = shared + repository_test_images()
    started = time.perf_counter()
    chips, labels = chips_from_images(paths, limit=args.limit)
    chip_seconds = time.perf_counter() - started
    print(f"{len(chips)} chips from {len(paths)} files in {chip_seconds:.0f} s", file=sys.stderr)

    dlib_embeddings = DlibDescriptor(model_paths()["encoder"]).compute(chips)
    port = TFLiteDescriptor(DEFAULT_MODEL_PATH)
    port_embeddings = np.concatenate([port.compute(chips[i : i + 16]) for i in range(0, len(chips), 16)])

    component = np.abs(port_embeddings - dlib_embeddings)
    dlib_pairs, port_pairs = pair_distances(dlib_embeddings), pair_distances(port_embeddings)
    pair_delta = np.abs(port_pairs - dlib_pairs)
    threshold, intra = settings.match.threshold, settings.match.max_intra_distance
    changed_match = int(np.sum((dlib_pairs <= threshold) != (port_pairs <= threshold)))
    changed_intra = int(np.sum((dlib_pairs <= intra) != (port_pairs <= intra)))
    margin = np.abs(dlib_pairs - threshold)
    closest = int(np.argmin(margin))
    norms = np.linalg.norm(dlib_embeddings, axis=1)
    data = {
        "machine": report.machine_details(contention_note=args.note),
        "chips": len(chips),
        "files": len(paths),
        "sources": {"shared_faces": str(args.faces), "repository": "tests/data"},
        "model": str(DEFAULT_MODEL_PATH.relative_to(REPOSITORY)),
        "component_abs_diff": {
            "max": float(component.max()),
            "mean": float(component.mean()),
            "p99": float(np.quantile(component, 0.99)),
            "max_relative_to_component_std": float(component.max() / dlib_embeddings.std()),
        },
        "embedding_norm": {"min": float(norms.min()), "max": float(norms.max())},
        "pairs": len(dlib_pairs),
        "pair_distance_abs_diff": {"max": float(pair_delta.max()), "mean": float(pair_delta.mean())},
        "match_threshold": threshold,
        "match_decisions_changed": changed_match,
        "pairs_matching_dlib": int(np.sum(dlib_pairs <= threshold)),
        "max_intra_distance": intra,
        "same_person_decisions_changed": changed_intra,
        "closest_pair_to_threshold": {
            "dlib_distance": float(dlib_pairs[closest]),
            "port_distance": float(port_pairs[closest]),
            "margin": float(margin[closest]),
        },
        "pairs_within_max_diff_of_threshold": int(np.sum(margin <= pair_delta.max())),
        "worst_chip": labels[int(np.argmax(component.max(axis=1)))],
    }
    rows = [
        ("chips (faces)", f"{len(chips)} from {len(paths)} files"),
        ("max abs difference per component", f"{data['component_abs_diff']['max']:.2e}"),
        ("mean abs difference per component", f"{data['component_abs_diff']['mean']:.2e}"),
        ("embedding norm (dlib)", f"{norms.min():.3f}–{norms.max():.3f}"),
        ("pairs", f"{len(dlib_pairs)} ({data['pairs_matching_dlib']} within the threshold)"),
        ("max change of a pair distance", f"{data['pair_distance_abs_diff']['max']:.2e}"),
        (f"match decisions changed (distance <= {threshold})", changed_match),
        (f"same-person decisions changed (<= {intra})", changed_intra),
        (
            "pair closest to the threshold",
            f"dlib {dlib_pairs[closest]:.6f}, port {port_pairs[closest]:.6f} (margin {margin[closest]:.2e})",
        ),
        ("pairs closer to the threshold than the max change", data["pairs_within_max_diff_of_threshold"]),
    ]
    body = "\n".join(
        [
            "dlib's `compute_face_descriptor` (dlib-bin) vs the TFLite port (`recognition_service/models/"
            "dlib_face_recognition_resnet_v1.tflite`, ai-edge-litert, XNNPACK) on the same dlib chips "
            "(`python -m bench.descriptor_parity`).",
            "",
            report.markdown_table(("measure", "value"), rows),
            "",
            "Verdict: "
            + (
                "no match or same-person decision changes; templates of either descriptor are valid for the other."
                if changed_match == 0 and changed_intra == 0
                else "DECISIONS CHANGE — the port must not be used with templates of the other."
            ),
        ]
    )
    _json_path, md_path = report.write_result(
        "descriptor_parity", "Face descriptor parity: TFLite port vs dlib", data, body
    )
    print(md_path.read_text())
    return 0 if changed_match == 0 and changed_intra == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
