"""The operator commands end to end on a small real dataset: train writes a model + spec + card, evaluate reports
ISO/IEC 30107-3 numbers and a DET plot, and the trained model loads into the service's scorer."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np

from liveness_service import evaluate
from liveness_service.passive import PassiveModel

SPLITS = {"0001": "train", "0002": "train", "0003": "val", "0004": "test"}


def test_train_then_evaluate_on_a_labels_csv(tmp_path, shared_data, capsys):
    nuaa = shared_data / "liveness" / "nuaa"
    rows = []
    with (nuaa / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            label = "live" if row["label"] == "live" else "spoof"
            if row["subject"] in SPLITS and sum(1 for r in rows if r[3] == row["subject"] and r[1] == label) < 3:
                rows.append(
                    (
                        str(nuaa / row["file"]),
                        label,
                        "" if label == "live" else "print",
                        row["subject"],
                        SPLITS[row["subject"]],
                    )
                )
    data = tmp_path / "data"
    data.mkdir()
    with (data / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "attack_type", "group", "split"])
        writer.writerows([(r[0], r[1], r[2], r[3], r[4]) for r in rows])
    model = tmp_path / "out" / "pad.tflite"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    common = ["--data", str(data), "--cache", str(tmp_path / "cache")]
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "liveness_service.train",
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

    scores = PassiveModel(model).scorer.score(np.zeros((2, 80, 80, 3), np.uint8))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
