"""Operator tools: bulk-encode CLI, pairs evaluation, settings."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from faceauth_common.settings import SettingsError
from recognition_service.config import Settings
from recognition_service.engine import DetectionSettings, model_version
from recognition_service.tools import cli, evaluate

ENROLL = DetectionSettings(max_side=800, upsample=0, retry_upsample=True)


@pytest.fixture(scope="module")
def people_tree(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("people")
    for person, names in {"obama": ["obama", "obama2"], "biden": ["biden2", "two_people"]}.items():
        (root / person).mkdir()
        for name in names:
            shutil.copy(photos[name], root / person / f"{name}{photos[name].suffix}")
    (root / "biden" / "notes.jpg").write_bytes(b"not an image at all")
    (root / "nobody").mkdir()
    return root


def test_encode_folder_writes_the_template_export_format(people_tree, tmp_path, capsys):
    out, npz = tmp_path / "templates.json", tmp_path / "templates.npz"
    assert cli.main(["encode-folder", str(people_tree), "--out", str(out), "--npz", str(npz), "--no-progress"]) == 0
    document = json.loads(out.read_text())
    assert document["format"] == "faceauth-templates/1"
    assert document["model_version"] == model_version("tflite")  # the default descriptor
    assert document["created"]
    people = {p["name"]: p for p in document["people"]}
    assert set(people) == {"obama", "biden", "nobody"}
    assert [t["source"] for t in people["obama"]["templates"]] == ["obama/obama.jpg", "obama/obama2.jpg"]
    for template in people["obama"]["templates"] + people["biden"]["templates"]:
        assert len(template["embedding"]) == 128 and 0 < template["quality"] <= 1
    assert [t["source"] for t in people["biden"]["templates"]] == ["biden/biden2.jpg"]
    assert {(s["source"], s["reason"]) for s in people["biden"]["skipped"]} == {
        ("biden/notes.jpg", "BAD_IMAGE"),
        ("biden/two_people.jpg", "MULTIPLE_FACES"),
    }
    obama = np.asarray([t["embedding"] for t in people["obama"]["templates"]])
    assert np.linalg.norm(obama[0] - obama[1]) < 0.55
    arrays = np.load(npz)
    assert arrays["embeddings"].shape == (3, 128)
    assert list(arrays["names"]) == ["biden", "obama", "obama"]
    summary = capsys.readouterr().err
    assert "3 people, 3 templates, 2 images skipped" in summary
    assert "MULTIPLE_FACES: 1" in summary and "people with no usable image: nobody" in summary


def test_encode_folder_photo_mode_keeps_the_subject_and_drops_someone_else(
    tmp_path, photos, rgb, engine, face_patch, paste, obama_with_a_smaller_face_in_the_corner
):
    """An attack on photo mode's choice: a photo in obama/ whose most prominent face is Biden's (Obama small in
    a corner) would enroll Biden for obama. It is skipped as INCONSISTENT_IDENTITY because it matches none of
    the folder's single-face photos; the portrait with a background face is kept. The live rules refuse both."""
    folder = tmp_path / "people" / "obama"
    folder.mkdir(parents=True)
    for name in ("obama", "obama2"):
        shutil.copy(photos[name], folder / f"{name}.jpg")
    biden = rgb("biden")
    biden_box = engine.detect(biden, ENROLL)[0][0]
    obama_small = face_patch(rgb("obama"), round(0.65 * biden_box.width))
    someone_else = paste(
        biden, obama_small, obama_small.shape[1] // 2 + 5, biden.shape[0] - obama_small.shape[0] // 2 - 5
    )
    for name, image in {
        "with_background.jpg": obama_with_a_smaller_face_in_the_corner,
        "zz_biden.jpg": someone_else,
    }.items():
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    settings = Settings.from_env()
    assert engine.encode(someone_else, settings.encode_detection, settings.quality, settings.photo).faces_found == 2

    photo = cli.encode_folder(tmp_path / "people", engine, settings, progress=False)
    (person,) = photo["people"]
    assert photo["encode_mode"] == "photo"
    assert [t["source"] for t in person["templates"]] == [
        "obama/obama.jpg",
        "obama/obama2.jpg",
        "obama/with_background.jpg",
    ]
    assert person["skipped"] == [{"source": "obama/zz_biden.jpg", "reason": "INCONSISTENT_IDENTITY"}]

    live = cli.encode_folder(tmp_path / "people", engine, settings, progress=False, photo_mode=False)
    assert {s["source"]: s["reason"] for s in live["people"][0]["skipped"]} == {
        "obama/with_background.jpg": "MULTIPLE_FACES",
        "obama/zz_biden.jpg": "MULTIPLE_FACES",
    }


def test_encode_folder_refuses_a_missing_folder(tmp_path, capsys):
    assert cli.main(["encode-folder", str(tmp_path / "absent"), "--out", str(tmp_path / "t.json")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_rates_and_threshold_at_fmr():
    same = np.array([0.2, 0.3, 0.4, 0.6])
    different = np.array([0.5, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert evaluate.rates(same, different, 0.45) == (0.0, 0.25)
    assert evaluate.rates(same, different, 0.65) == (0.1, 0.0)
    # FMR 0.1 with 10 different pairs allows one false match: any threshold below the second smallest.
    threshold = evaluate.threshold_at_fmr(different, 0.1)
    assert 0.5 <= threshold < 0.7
    assert evaluate.rates(same, different, threshold)[0] <= 0.1
    assert evaluate.threshold_at_fmr(different, 0.01) is None  # 10 pairs cannot resolve 1e-2


def test_pairs_csv_and_folder_pairs(tmp_path, people_tree):
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("file_x,file_y,same,source\na.jpg,b.jpg,1,x\na.jpg,c.jpg,0,x\n")
    pairs = evaluate.read_pairs_csv(csv_file)
    assert [(p.left.name, p.right.name, p.same) for p in pairs] == [("a.jpg", "b.jpg", True), ("a.jpg", "c.jpg", False)]
    all_pairs = evaluate.folder_pairs(people_tree)
    assert len(all_pairs) == 10  # 5 images
    assert sum(p.same for p in all_pairs) == 4  # obama: 1 pair; biden (3 files): 3 pairs


def test_settings_defaults_and_bad_values(monkeypatch):
    settings = Settings.from_env()
    assert settings.match.threshold == 0.55 and settings.match.min_matched_frames == 2
    assert settings.verify_detection.max_side == 400 and settings.detector == "hog"
    monkeypatch.setenv("RECOGNITION_MATCH_THRESHOLD", "loose")
    with pytest.raises(SettingsError, match="RECOGNITION_MATCH_THRESHOLD"):
        Settings.from_env()
    monkeypatch.setenv("RECOGNITION_MATCH_THRESHOLD", "0.5")
    monkeypatch.setenv("RECOGNITION_DETECTOR", "haar")
    with pytest.raises(SettingsError, match="RECOGNITION_DETECTOR"):
        Settings.from_env()
    monkeypatch.setenv("RECOGNITION_DETECTOR", "hog")
    monkeypatch.setenv("RECOGNITION_MIN_MATCHED_FRAMES", "3")
    monkeypatch.setenv("RECOGNITION_VERIFY_MAX_EMBEDDINGS", "2")
    with pytest.raises(SettingsError, match="no capture could ever match"):
        Settings.from_env()
