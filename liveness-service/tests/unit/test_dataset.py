from pathlib import Path

import cv2
import numpy as np

from liveness_service.tools import dataset


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 40, 3), 128, np.uint8))


def test_folder_layout_keeps_each_group_in_one_split(tmp_path):
    for person in ("alice", "bob", "carol", "dave", "erin", "frank"):
        for index in range(3):
            _image(tmp_path / "live" / person / f"{index}.jpg")
            _image(tmp_path / "spoof" / "print" / person / f"{index}.png")
    _image(tmp_path / "spoof" / "replay" / "loose.jpg")
    samples = dataset.load_samples(tmp_path)
    assert len(samples) == 6 * 3 * 2 + 1
    assert {s.attack_type for s in samples if not s.live} == {"print", "replay"}
    splits_per_group: dict[str, set[str]] = {}
    for sample in samples:
        splits_per_group.setdefault(sample.group, set()).add(sample.split)
    assert all(len(splits) == 1 for splits in splits_per_group.values())
    # Deterministic: the same data gives the same split.
    assert [s.split for s in dataset.load_samples(tmp_path)] == [s.split for s in samples]


def test_csv_layout_with_explicit_splits(tmp_path):
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "b.jpg")
    (tmp_path / "labels.csv").write_text(
        "file,label,attack_type,group,split\na.jpg,live,,s1,train\nb.jpg,spoof,replay,s2,test\n"
    )
    first, second = dataset.load_samples(tmp_path)
    assert (first.live, first.split, first.attack_type) == (True, "train", "")
    assert (second.live, second.split, second.attack_type) == (False, "test", "replay")


def test_shared_layout_split_holds_out_subjects_and_recording_blocks(tmp_path):
    """The layout of the team's liveness data set (outside the repository; read by train/evaluate and bench/, never
    by the suite) rebuilt in miniature: NUAA subjects 0008-0009 test and 0007 val, apfol_replay split into contiguous
    frame-index blocks per class (numeric order, not name order), the old seed images train only."""
    nuaa_dir = tmp_path / "nuaa"
    rows = ["file,label,subject,glasses_field,pos_field,session,nuaa_list_split"]
    for subject in range(1, 10):
        for kind, label in (("ClientRaw", "live"), ("ImposterRaw", "spoof")):
            for frame in range(2):
                name = f"{kind}/{subject:04d}/{subject:04d}_00_00_01_{frame}.jpg"
                _image(nuaa_dir / name)
                rows.append(f"{name},{label},{subject:04d},00,00,01,train")
    (nuaa_dir / "labels.csv").write_text("\n".join(rows) + "\n")
    for folder in ("real", "fake"):
        for index in range(20):
            _image(tmp_path / "apfol_replay" / folder / f"{index}.png")
        _image(tmp_path / "seed" / "dataset" / folder / "1.jpg")

    samples = dataset.load_samples(tmp_path)
    assert len(samples) == 9 * 2 * 2 + 2 * 20 + 2
    nuaa = [s for s in samples if s.group.startswith("nuaa/")]
    nuaa_groups = {split: {s.group for s in nuaa if s.split == split} for split in dataset.SPLITS}
    assert nuaa_groups == {
        "train": {f"nuaa/{subject:04d}" for subject in range(1, 7)},
        "val": {"nuaa/0007"},
        "test": {"nuaa/0008", "nuaa/0009"},
    }
    assert {s.attack_type for s in nuaa if not s.live} == {"print"}
    for folder, live in (("real", True), ("fake", False)):
        apfol = [s for s in samples if s.path.parent == (tmp_path / "apfol_replay" / folder).resolve()]
        splits = {int(s.path.stem): s.split for s in apfol}
        assert [splits[index] for index in range(20)] == ["train"] * 12 + ["val"] * 3 + ["test"] * 5
        assert all(s.live == live and s.attack_type == ("" if live else "replay") for s in apfol)
    assert {(s.split, s.attack_type, s.live) for s in samples if s.group.startswith("seed/")} == {
        ("train", "", True),
        ("train", "seed", False),
    }
    table = dataset.describe(samples)
    assert table["test"] == {"live": 2 * 2 + 5, "print": 2 * 2, "replay": 5}
    assert table["val"] == {"live": 2 + 3, "print": 2, "replay": 3}
