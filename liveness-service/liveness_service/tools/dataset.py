"""Labelled liveness images for training and evaluation, with a split that never leaks a subject/session.

Three layouts are understood under ``--data DIR``:

1. ``DIR/labels.csv`` with columns ``file,label,attack_type,group[,split]``: ``label`` is ``live`` or
   ``spoof``; ``group`` is the subject or session (all images of a group land in one split); ``split``
   (``train``/``val``/``test``) fixes the split explicitly.
2. Folders: ``DIR/live/**`` and ``DIR/spoof/<attack-type>/**``; the group is the first sub-folder below
   ``live/`` or ``spoof/<attack-type>/`` (e.g. ``live/alice/001.jpg``), or the file itself when there is none.
3. faceauth's shared data (``DIR/nuaa/labels.csv``, ``DIR/apfol_replay``, ``DIR/seed``), with the fixed
   held-out split documented in MODEL_CARD.md: NUAA subjects 0001-0006 train, 0007 val, 0008-0009 test;
   apfol_replay (one person, one recording per class) split by contiguous frame-index blocks
   (first 60 % train, next 15 % val, last 25 % test per class, so neighbouring video frames never straddle
   splits); the old project's seed images train only.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    path: Path
    live: bool
    attack_type: str  # "" for live samples
    group: str
    split: str


def load_samples(data_dir: Path, val_fraction: float = 0.15, test_fraction: float = 0.25) -> list[Sample]:
    data_dir = Path(data_dir)
    if (data_dir / "labels.csv").is_file():
        return _from_csv(data_dir, val_fraction, test_fraction)
    if (data_dir / "live").is_dir() and (data_dir / "spoof").is_dir():
        return _from_folders(data_dir, val_fraction, test_fraction)
    if (data_dir / "nuaa" / "labels.csv").is_file():
        return _from_shared(data_dir)
    raise ValueError(f"{data_dir}: expected labels.csv, live/ + spoof/<attack-type>/ folders, or faceauth shared data")


def _from_csv(data_dir: Path, val_fraction: float, test_fraction: float) -> list[Sample]:
    rows = []
    with (data_dir / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            label = row["label"].strip().lower()
            if label not in ("live", "spoof"):
                raise ValueError(f"labels.csv: label must be live or spoof, got {label!r}")
            rows.append(row)
    groups = {row["group"] for row in rows}
    assigned = _assign_groups(groups, val_fraction, test_fraction)
    return [
        Sample(
            path=(data_dir / row["file"]).resolve(),
            live=row["label"].strip().lower() == "live",
            attack_type="" if row["label"].strip().lower() == "live" else (row.get("attack_type") or "spoof").strip(),
            group=row["group"],
            split=(row.get("split") or "").strip() or assigned[row["group"]],
        )
        for row in rows
    ]


def _from_folders(data_dir: Path, val_fraction: float, test_fraction: float) -> list[Sample]:
    found: list[tuple[Path, bool, str, str]] = []
    roots = [(data_dir / "live", True, "")]
    roots += [(folder, False, folder.name) for folder in sorted((data_dir / "spoof").iterdir()) if folder.is_dir()]
    for root, live, attack in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                relative = path.relative_to(root)
                group = relative.parts[0] if len(relative.parts) > 1 else relative.stem
                found.append((path, live, attack, f"{'live' if live else attack}/{group}"))
    assigned = _assign_groups({group for *_, group in found}, val_fraction, test_fraction)
    return [Sample(path, live, attack, group, assigned[group]) for path, live, attack, group in found]


def _assign_groups(groups: set[str], val_fraction: float, test_fraction: float) -> dict[str, str]:
    """Deterministic group -> split from a hash of the group name (stable when groups are added)."""
    assigned = {}
    for group in groups:
        bucket = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        assigned[group] = (
            "test" if bucket < test_fraction else "val" if bucket < test_fraction + val_fraction else "train"
        )
    return assigned


NUAA_SPLIT = {**{f"{s:04d}": "train" for s in range(1, 7)}, "0007": "val", "0008": "test", "0009": "test"}


def _from_shared(data_dir: Path) -> list[Sample]:
    samples: list[Sample] = []
    with (data_dir / "nuaa" / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            live = row["label"] == "live"
            samples.append(
                Sample(
                    path=(data_dir / "nuaa" / row["file"]).resolve(),
                    live=live,
                    attack_type="" if live else "print",
                    group=f"nuaa/{row['subject']}",
                    split=NUAA_SPLIT.get(row["subject"], "train"),
                )
            )
    for folder, live in (("real", True), ("fake", False)):
        paths = sorted((data_dir / "apfol_replay" / folder).glob("*.png"), key=lambda p: int(p.stem))
        for position, path in enumerate(paths):
            share = position / len(paths)
            split = "train" if share < 0.60 else "val" if share < 0.75 else "test"
            samples.append(Sample(path.resolve(), live, "" if live else "replay", f"apfol/{folder}/{split}", split))
    for path in sorted((data_dir / "seed").rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            live = path.parent.name == "real"
            samples.append(Sample(path.resolve(), live, "" if live else "seed", f"seed/{path.parent.name}", "train"))
    return samples


def describe(samples: list[Sample]) -> dict[str, dict[str, int]]:
    """Counts per split and class/attack type (for logs and the model card)."""
    table: dict[str, dict[str, int]] = {}
    for sample in samples:
        key = "live" if sample.live else sample.attack_type
        table.setdefault(sample.split, {}).setdefault(key, 0)
        table[sample.split][key] += 1
    return table


def cache_key(samples: list[Sample], size: int, box_scale: float) -> str:
    digest = hashlib.sha256(f"{size}:{box_scale}".encode())
    for sample in samples:
        digest.update(str(sample.path).encode())
        stat = sample.path.stat()
        digest.update(f"{stat.st_size}:{int(stat.st_mtime)}".encode())
    return re.sub(r"[^0-9a-f]", "", digest.hexdigest())[:16]


def load_crops(
    samples: list[Sample], size: int, box_scale: float, cache_dir: Path | None = None
) -> tuple[object, list[bool]]:
    """BGR uint8 crops (N, size, size, 3) with context around the detected face, cached as .npz.

    Images in which HOG finds no face are already tight face crops in this data (apfol_replay), so the
    whole image is taken as the face box; the returned flags say which samples had a detected face.
    """
    import cv2
    import numpy as np

    from faceauth_common.boxes import Box
    from liveness_service.faces import FaceAnalyzer, crop_with_context

    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"crops_{size}_{box_scale}_{cache_key(samples, size, box_scale)}.npz"
        if cache_file.is_file():
            cached = np.load(cache_file)
            return cached["crops"], [bool(flag) for flag in cached["detected"]]
    analyzer = FaceAnalyzer()
    crops, detected = [], []
    for sample in samples:
        bgr = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{sample.path}: cannot be read as an image")
        boxes = analyzer.detect(bgr[:, :, ::-1].copy())
        height, width = bgr.shape[:2]
        box = boxes[0] if boxes else Box(0, 0, width, height)
        crops.append(crop_with_context(bgr, box, box_scale, size))
        detected.append(bool(boxes))
    stacked = np.stack(crops)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache_file, crops=stacked, detected=np.array(detected))
    return stacked, detected
