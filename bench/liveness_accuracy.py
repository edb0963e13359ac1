"""The shipped passive liveness model on real presentation attacks, against what its model card claims.

Reads ``../shared/data`` (NUAA print attacks, apfol_replay screen replays, Minivision's reference crops), which may
not be copied into the repository, so the test suite cannot check these claims; this script does, and exits 1 when
one does not hold:

1. port: the shipped TFLite file gives the original PyTorch p(live) on the 6 reference crops (within 1e-4);
2. a held-out printed photo: NUAA subject 0008's first 10 ImposterRaw frames are refused (SPOOF_SUSPECTED) by the
   passive check and the same subject's first 10 ClientRaw frames pass;
3. the held-out test split (MODEL_CARD.md: 37 live, 30 print, 9 replay): per attack type at least the claimed number
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
from liveness_service.passive import DEFAULT_MODEL, ModelSpec, TFLiteScorer
from liveness_service.tools import dataset
from liveness_service.verdict import LivenessEngine

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
MODEL_CARD_NUMBERS = DEFAULT_MODEL.with_name("minifasnet_v2.eval.json")
REFERENCE = Path("weights/silent_face/2.7_80x80_MiniFASNetV2.reference.npz")


def nuaa_capture(data: Path, kind: str, subject: str) -> list[np.ndarray]:
    """The first 10 frames (in recording order) of one NUAA subject, RGB."""
    folder = data / "liveness" / "nuaa" / kind / subject
    paths = sorted(folder.glob("*.jpg"), key=lambda p: (p.stem.rsplit("_", 1)[0], int(p.stem.rsplit("_", 1)[1])))
    return [cv2.imread(str(p))[:, :, ::-1].copy() for p in paths[:10]]


def check_port(data: Path) -> dict:
    reference = np.load(data / REFERENCE)
    scores = TFLiteScorer(DEFAULT_MODEL).score(reference["crops_bgr_uint8"])
    error = float(np.abs(scores - reference["softmax"][:, 1]).max())
    return {"max_abs_p_live_difference": error, "passed": error <= 1e-4}


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
    spec = ModelSpec.for_model(DEFAULT_MODEL)
    samples = [s for s in dataset.load_samples(data / "liveness") if s.split == "test"]
    crops, _ = dataset.load_crops(samples, spec.input_size, spec.box_scale, cache_dir=None)
    scores = TFLiteScorer(DEFAULT_MODEL).score(crops)
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
        "model": DEFAULT_MODEL.name,
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
