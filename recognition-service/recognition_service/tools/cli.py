"""Operator commands of the recognition service.

    python -m recognition_service.tools.cli encode-folder DIR --out templates.json [--npz templates.npz]
        [--mode photo|live]

``encode-folder`` bulk-encodes a folder tree with one sub-folder per person (the folder name is the
username, like the old ``encode_faces.py``) into the template export format that auth-web's
``import-templates`` reads. Photos are encoded in photo mode by default (the dominant face; see
``recognition_service.choice``); ``--mode live`` applies the camera's strict rules instead. Images
without a usable face are skipped and listed with the reason; so is a face chosen among others that matches
none of the person's single-face photos (``INCONSISTENT_IDENTITY``: it is somebody else).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recognition_service.config import Settings
from recognition_service.engine import FaceEngine, FaceStatus
from recognition_service.tools.images import IMAGE_SUFFIXES, load_image_file

EXPORT_FORMAT = "faceauth-templates/1"


def person_images(root: Path) -> dict[str, list[Path]]:
    """``{person folder name: [image paths]}``, sorted; images directly in ``root`` are ignored."""
    people = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        people[folder.name] = images
    return people


def encode_folder(
    root: Path,
    engine: FaceEngine,
    settings: Settings,
    min_quality: float = 0.0,
    progress: bool = True,
    photo_mode: bool = True,
) -> dict:
    """Encode every person's images; returns the export document (see the module docstring)."""
    photo = settings.photo if photo_mode else None
    people = person_images(root)
    total = sum(len(images) for images in people.values())
    document: dict = {
        "format": EXPORT_FORMAT,
        "model_version": engine.model_version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "encode_mode": "photo" if photo_mode else "live",
        "people": [],
    }
    with tqdm(total=total, unit="img", disable=not progress, file=sys.stderr) as bar:
        for name, images in people.items():
            entry: dict = {"name": name, "templates": [], "skipped": []}
            chosen_among_others: list[int] = []  # templates of photos where other faces were set aside
            for path in images:
                source = path.relative_to(root).as_posix()
                bar.set_postfix_str(source[-40:], refresh=False)
                try:
                    image = load_image_file(path)
                except (OSError, ValueError):
                    entry["skipped"].append({"source": source, "reason": FaceStatus.BAD_IMAGE.value})
                    bar.update()
                    continue
                observation = engine.encode(image, settings.encode_detection, settings.quality, photo)
                if observation.status is not FaceStatus.OK or observation.embedding is None:
                    entry["skipped"].append({"source": source, "reason": observation.status.value})
                elif observation.quality < min_quality:
                    entry["skipped"].append({"source": source, "reason": "LOW_QUALITY"})
                else:
                    if observation.faces_ignored:
                        chosen_among_others.append(len(entry["templates"]))
                    entry["templates"].append(
                        {
                            "embedding": [round(float(v), 7) for v in observation.embedding],
                            "quality": round(observation.quality, 4),
                            "source": source,
                        }
                    )
                bar.update()
            _drop_other_people(entry, chosen_among_others, settings.match.max_intra_distance)
            document["people"].append(entry)
    return document


def _drop_other_people(entry: dict, chosen_among_others: list[int], max_distance: float) -> None:
    """A face chosen in a photo with other people is checked against the person's single-face photos: when
    it is further than ``max_distance`` (RECOGNITION_MAX_INTRA_DISTANCE) from every one of them, it is someone
    else (a photo whose most prominent face is not the folder's person) and is skipped as
    ``INCONSISTENT_IDENTITY`` instead of being enrolled for the wrong user. Without single-face photos to
    compare with, photo mode's choice stands."""
    checked = set(chosen_among_others)
    anchors = [np.asarray(t["embedding"]) for i, t in enumerate(entry["templates"]) if i not in checked]
    if not anchors or not checked:
        return
    anchor_array = np.stack(anchors)
    dropped = set()
    for index in chosen_among_others:
        template = entry["templates"][index]
        closest = float(np.min(np.linalg.norm(anchor_array - np.asarray(template["embedding"]), axis=1)))
        if closest > max_distance:
            dropped.add(index)
            entry["skipped"].append({"source": template["source"], "reason": "INCONSISTENT_IDENTITY"})
    entry["templates"] = [t for i, t in enumerate(entry["templates"]) if i not in dropped]


def write_npz(document: dict, path: Path) -> None:
    """The same templates as arrays: embeddings (n, 128), names, sources, qualities."""
    rows = [(person["name"], t) for person in document["people"] for t in person["templates"]]
    np.savez_compressed(
        path,
        embeddings=np.asarray([t["embedding"] for _, t in rows], dtype=np.float64).reshape(-1, 128),
        names=np.asarray([name for name, _ in rows], dtype=str),
        sources=np.asarray([t["source"] for _, t in rows], dtype=str),
        qualities=np.asarray([t["quality"] for _, t in rows], dtype=np.float64),
        model_version=np.asarray(document["model_version"]),
    )


def summary(document: dict) -> str:
    templates = sum(len(p["templates"]) for p in document["people"])
    skipped = [s for p in document["people"] for s in p["skipped"]]
    reasons = Counter(s["reason"] for s in skipped)
    without = [p["name"] for p in document["people"] if not p["templates"]]
    lines = [f"{len(document['people'])} people, {templates} templates, {len(skipped)} images skipped"]
    lines += [f"  {reason}: {count}" for reason, count in reasons.most_common()]
    lines += [f"  skipped {s['source']}: {s['reason']}" for s in skipped]
    if without:
        lines.append(f"people with no usable image: {', '.join(without)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recognition_service.tools.cli", description="recognition operator tools"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    encode = commands.add_parser("encode-folder", help="bulk-encode a folder with one sub-folder per person")
    encode.add_argument("folder", type=Path)
    encode.add_argument("--out", type=Path, required=True, help="template export JSON (faceauth-templates/1)")
    encode.add_argument("--npz", type=Path, help="also write the templates as a NumPy .npz")
    encode.add_argument("--min-quality", type=float, default=0.0, help="skip faces below this quality (0..1)")
    encode.add_argument(
        "--mode",
        choices=("photo", "live"),
        default="photo",
        help="photo (default): the dominant face of each photo; live: the camera's strict rules",
    )
    encode.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    engine = FaceEngine.load(
        settings.detector,
        settings.num_jitters,
        descriptor=settings.descriptor,
        descriptor_threads=settings.descriptor_threads,
    )
    document = encode_folder(
        args.folder, engine, settings, args.min_quality, progress=not args.no_progress, photo_mode=args.mode == "photo"
    )
    if not document["people"]:
        print(f"error: {args.folder} has no person sub-folders", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document) + "\n")
    if args.npz:
        write_npz(document, args.npz)
    print(summary(document), file=sys.stderr)
    print(f"wrote {args.out}" + (f" and {args.npz}" if args.npz else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
