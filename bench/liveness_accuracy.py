"""The shipped passive liveness model (both Silent-Face models fused) on real presentation attacks, against its card.

Reads ``../shared/data`` (NUAA print attacks, apfol_replay screen replays, Minivision's reference crops), which may
not be copied into the repository, so the test suite cannot check these claims; this script does, and exits 1 when
one does not hold:

1. port: each shipped TFLite file (MiniFASNetV2, MiniFASNetV1SE) gives the original PyTorch p(live) on its 6
   reference crops (within 1e-4);
2. a held-out printed photo: NUAA subject 0008's first 10 ImposterRaw frames are refused (SPOOF_SUSPECTED) by the
   passive check and the same subject's first 10 ClientRaw frames pass;
3. the held-out test split (MODEL_CARD.md: 37 live, 30 print, 9 replay), scored by the default passive model
   (``silent_face_fused``; its claims in ``silent_face_fused.eval.json``): per attack type at least the claimed number
   of images rejected, less one (one image is 3.3 / 11.1 points; decoder or HOG differences across library versions
   can move a borderline crop), and at most one more live image rejected than claimed.

    .venv/bin/python bench/liveness_accuracy.py [--data ../shared/data] [--out bench/results/liveness_accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from liveness_service.config import Settings
from liveness_service.passive import DEFAULT_PASSIVE, PACKAGE_MODELS, PassiveSpec, TFLiteScorer, resolve_spec
from liveness_service.tools import dataset, evaluate
from liveness_service.verdict import LivenessEngine

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
MODEL_CARD_NUMBERS = PACKAGE_MODELS / f"{DEFAULT_PASSIVE}.eval.json"
REFERENCES = {
    "minifasnet_v2": Path("weights/silent_face/2.7_80x80_MiniFASNetV2.reference.npz"),
    "minifasnet_v1se": Path("weights/silent_face/4_0_0_80x80_MiniFASNetV1SE.reference.npz"),
}


def nuaa_capture(data: Path, kind: str, subject: str) -> list[np.ndarray]:
    """The first 10 frames (in recording order) of one NUAA subject, RGB."""
    folder = data / "liveness" / "nuaa" / kind / subject
    paths = sorted(folder.glob("*.jpg"), key=lambda p: (p.stem.rsplit("_", 1)[0], int(p.stem.rsplit("_", 1)[1])))
    return [cv2.imread(str(p))[:, :, ::-1].copy() for p in paths[:10]]


def check_port(data: Path) -> dict:
    result: dict = {"passed": True}
    for name, path in REFERENCES.items():
        reference = np.load(data / path)
        scores = TFLiteScorer(PACKAGE_MODELS / f"{name}.tflite").score(reference["crops_bgr_uint8"])
        error = float(np.abs(scores - reference["softmax"][:, 1]).max())
        result[name] = {"max_abs_p_live_difference": error, "passed": error <= 1e-4}
        result["passed"] &= error <= 1e-4
    return result


def check_printed_photo(data: Path) -> dict:
    passive_only = LivenessEngine.load(Settings.from_env({"LIVENESS_CHECKS": "passive"}))
    printed = passive_only.check(nuaa_capture(data, "ImposterRaw", "0008"), [], [])
    live = passive_only.check(nuaa_capture(data, "ClientRaw", "0008"), [], [])
    return {
        "printed": {"reason": printed.reason, "live_score": printed.live_score},
        "live": {"reason": live.reason, "live_score": live.live_score},
        "passed": printed.reason == "SPOOF_SUSPECTED" and live.live,
    }


def check_held_out_split(data: Path) -> dict:
    claimed = json.loads(MODEL_CARD_NUMBERS.read_text())
    spec = PassiveSpec.load(resolve_spec(DEFAULT_PASSIVE))
    samples = [s for s in dataset.load_samples(data / "liveness") if s.split == "test"]
    scores = evaluate.score_split(spec, samples, cache_dir=None)
    result: dict = {"attacks": {}, "passed": True}
    for attack in ("print", "replay"):
        attack_scores = np.array([sc for sc, s in zip(scores, samples, strict=True) if s.attack_type == attack])
        rejected = int(np.sum(attack_scores < spec.threshold))
        claimed_rejected = round((1 - claimed["apcer"][attack]) * claimed["attacks"][attack])
        ok = len(attack_scores) == claimed["attacks"][attack] and rejected >= claimed_rejected - 1
        result["attacks"][attack] = {
            "images": len(attack_scores),
            "rejected": rejected,
            "claimed_rejected": claimed_rejected,
            "passed": ok,
        }
        result["passed"] &= ok
    live_scores = np.array([sc for sc, s in zip(scores, samples, strict=True) if s.live])
    falsely_rejected = int(np.sum(live_scores < spec.threshold))
    claimed_false = round(claimed["bpcer"] * claimed["live"])
    live_ok = falsely_rejected <= claimed_false + 1
    result["live"] = {
        "images": len(live_scores),
        "falsely_rejected": falsely_rejected,
        "claimed_falsely_rejected": claimed_false,
        "passed": live_ok,
    }
    result["passed"] &= live_ok
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="faceauth's shared data (../shared/data)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "liveness_accuracy.json")
    args = parser.parse_args(argv)
    results = {
        "model": DEFAULT_PASSIVE,
        "port": check_port(args.data),
        "printed_photo_nuaa_0008": check_printed_photo(args.data),
        "held_out_split": check_held_out_split(args.data),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    failed = [name for name, value in results.items() if isinstance(value, dict) and not value["passed"]]
    print(json.dumps(results, indent=2))
    print(f"wrote {args.out}; " + (f"FAILED: {', '.join(failed)}" if failed else "every claim holds"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
