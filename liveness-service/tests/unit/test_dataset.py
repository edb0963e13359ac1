from pathlib import Path

import cv2
import numpy as np

from liveness_service import dataset


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


def test_shared_data_split_holds_out_subjects(shared_data):
    samples = dataset.load_samples(shared_data / "liveness")
    nuaa_test = {s.group for s in samples if s.split == "test" and s.group.startswith("nuaa/")}
    nuaa_train = {s.group for s in samples if s.split == "train" and s.group.startswith("nuaa/")}
    assert nuaa_test == {"nuaa/0008", "nuaa/0009"} and not nuaa_test & nuaa_train
    table = dataset.describe(samples)
    assert table["test"] == {"live": 37, "print": 30, "replay": 9}
