"""The operator commands end to end on a small dataset made here from real clips: train writes a model + spec + card,
evaluate reports ISO/IEC 30107-3 numbers and a DET plot, and the trained model loads into the service's scorer."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np

from liveness_service.config import Settings
from liveness_service.passive import PassiveModel
from liveness_service.tools import evaluate

# One group per clip (tests/data/video, MIT/Apache-2.0): 3 live frames and 3 recaptured copies ("print") of each.
CLIPS = {
    "liveportrait/d9.mp4": "train",
    "liveportrait/d12.mp4": "train",
    "liveportrait/d18.mp4": "val",
    "retalking/2.mp4": "test",
}


def test_train_then_evaluate_on_a_labels_csv(tmp_path, video_dir, sample_capture, recaptured, capsys):
    """The commands' behaviour on a tiny dataset built here; the numbers they report say nothing about accuracy."""
    data = tmp_path / "data"
    rows = []
    for clip, split in CLIPS.items():
        group = clip.removesuffix(".mp4").replace("/", "-")
        capture = sample_capture(video_dir / clip, fps=2.0, frames=3)
        for index, rgb in enumerate(capture.rgb()):
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            for label, attack, image in (("live", "", bgr), ("spoof", "print", recaptured(bgr))):
                relative = f"{label}/{group}/{index}.jpg"
                (data / relative).parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(data / relative), image)
                rows.append((relative, label, attack, group, split))
    with (data / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "attack_type", "group", "split"])
        writer.writerows(rows)
    model = tmp_path / "out" / "pad.tflite"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    common = ["--data", str(data), "--cache", str(tmp_path / "cache")]
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "liveness_service.tools.train",
            *common,
            "--out",
            str(model),
            "--epochs",
            "2",
            "--patience",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    spec = json.loads(model.with_suffix(".json").read_text())
    assert spec["input_size"] == 80 and 0.0 <= spec["threshold"] <= 1.0 + 1e-6
    card = model.with_suffix(".md").read_text()
    assert "Held-out test" in card and "APCER[print]" in card

    report = tmp_path / "eval.json"
    plot = tmp_path / "det.png"
    # evaluate in-process (TensorFlow is already loaded here; a second subprocess would only add start-up time)
    status = evaluate.main(["--model", str(model), *common, "--json", str(report), "--plot", str(plot)])
    output = capsys.readouterr().out
    assert status == 0
    for expected in ("APCER[print]", "APCER(max)", "BPCER @ APCER=1%", "BPCER @ APCER=5%"):
        assert expected in output
    numbers = json.loads(report.read_text())
    assert numbers["live"] == 3 and numbers["attacks"] == {"print": 3}
    assert plot.read_bytes().startswith(b"\x89PNG")

    # The trained model is what LIVENESS_PASSIVE_MODEL takes: a .tflite path with its spec beside it.
    loaded = PassiveModel(Settings.from_env({"LIVENESS_PASSIVE_MODEL": str(model)}).passive_model)
    scores = loaded.members[0].scorer.score(np.zeros((2, 80, 80, 3), np.uint8))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    assert loaded.spec.threshold == spec["threshold"]
