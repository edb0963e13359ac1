"""The old hobby pipeline against our services, on the same frames, in the same run.

Old (per frame, one frame at a time, as the hobby app did on its camera loop):
  1. ``face_recognition.face_encodings(frame)`` on the whole 640×480 frame, without known locations
     (so dlib's HOG detector runs at full resolution with its default one upsampling step);
  2. ``face_recognition.compare_faces(known_encodings, encoding)``;
  3. ``model.predict`` of the old 32×32 liveness CNN (the "LivenessNet" layout the hobby project used:
     2×[conv16-BN] → pool → 2×[conv32-BN] → pool → dense64 → softmax2) on one 32×32 input.
     The CNN is trained here for a few epochs on the old project's own seed data
     (../shared/data/liveness/seed/dataset/{real,fake}), like the old train script; its weights do not
     change its cost, its input size and layers do. Its input is the whole frame resized to 32×32:
     the old app cropped the detected face first, which would add work, so the old cost here is a lower bound.
JPEG decoding is left out of the old side (the old app read raw camera frames) and included on ours.

New: our services' ``Verify ∥ Check`` for the same 8-frame capture over gRPC, as auth-web calls them.

Reported per frame: wall time and CPU time (old: this process's CPU, TensorFlow's threads included;
ours: the services' CPU from /proc), and the old/new ratio of each.

    .venv/bin/python -m bench.old_pipeline [--rounds 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from bench import processes, report
from bench.frames import DEFAULT_CLIP, Frame, decode_rgb, describe
from bench.scenario import CHALLENGE_ACTION, Stubs, build_scenario, classify_windows, enroll_templates

SEED_DATASET = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "liveness" / "seed" / "dataset"
CNN_SIZE = 32
LOGIN_FRAMES = 8


def build_old_cnn():  # type: ignore[no-untyped-def]
    """The hobby project's 32×32 liveness CNN (LivenessNet layout), compiled as its train script did."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=(CNN_SIZE, CNN_SIZE, 3)),
            layers.Conv2D(16, (3, 3), padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.Conv2D(16, (3, 3), padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.BatchNormalization(),
            layers.Dropout(0.5),
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def load_seed_data(root: Path = SEED_DATASET) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, folder in enumerate(("fake", "real")):
        for path in sorted((root / folder).iterdir()):
            image = cv2.imread(str(path))
            if image is None:
                continue
            images.append(cv2.resize(image, (CNN_SIZE, CNN_SIZE)).astype("float32") / 255.0)
            labels.append(label)
    if not images:
        raise RuntimeError(f"no seed images under {root}")
    return np.stack(images), np.eye(2, dtype="float32")[labels]


def train_old_cnn(epochs: int):  # type: ignore[no-untyped-def]
    model = build_old_cnn()
    images, labels = load_seed_data()
    history = model.fit(images, labels, batch_size=8, epochs=epochs, verbose=0)
    return model, {"images": len(images), "epochs": epochs, "final_loss": round(float(history.history["loss"][-1]), 4)}


def old_pipeline_frame(rgb: np.ndarray, known: list[np.ndarray], model) -> tuple[bool, float]:  # type: ignore[no-untyped-def]
    import face_recognition

    matched = False
    for encoding in face_recognition.face_encodings(rgb):
        matched = matched or any(face_recognition.compare_faces(known, encoding))
    bgr_small = cv2.resize(rgb[:, :, ::-1], (CNN_SIZE, CNN_SIZE)).astype("float32") / 255.0
    probabilities = model.predict(bgr_small[np.newaxis], verbose=0)[0]
    return matched, float(probabilities[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--liveness", default="127.0.0.1:50051")
    parser.add_argument("--recognition", default="127.0.0.1:50052")
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 8-frame capture, each side")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of the old CNN on the seed data")
    parser.add_argument("--note", default="")
    parser.add_argument("--name", default="old_vs_new")
    args = parser.parse_args(argv)

    import face_recognition

    machine = report.machine_details(contention_note=args.note)
    scenario = build_scenario(args.clip)
    stubs = Stubs(args.liveness, args.recognition)
    stubs.wait_ready()
    pids = processes.discover(
        {"liveness": int(args.liveness.rsplit(":", 1)[1]), "recognition": int(args.recognition.rsplit(":", 1)[1])}
    )
    templates = enroll_templates(stubs, scenario)
    actions = [CHALLENGE_ACTION]
    verdicts = classify_windows(stubs, scenario.login_windows(LOGIN_FRAMES, stride=6), templates, actions)
    accepted = [verdict for verdict in verdicts if verdict.accepted]
    start_ms = accepted[0].start_ms if accepted else scenario.login_pool[0].time_ms
    start = next(index for index, frame in enumerate(scenario.login_pool) if frame.time_ms == start_ms)
    capture: list[Frame] = scenario.login_pool[start : start + LOGIN_FRAMES]

    # --- old: known encodings the way the old encode_faces.py made them (HOG, whole image) ---
    known = [enc for frame in scenario.enroll for enc in face_recognition.face_encodings(decode_rgb(frame))]
    model, training = train_old_cnn(args.epochs)
    rgb_frames = [decode_rgb(frame) for frame in capture]
    old_pipeline_frame(rgb_frames[0], known, model)  # warm-up (TF graph tracing, dlib first call)
    old_pipeline_frame(rgb_frames[1], known, model)
    old_durations, old_matches = [], 0
    cpu_started = time.process_time()
    wall_started = time.perf_counter()
    for _ in range(args.rounds):
        for rgb in rgb_frames:
            started = time.perf_counter()
            matched, _score = old_pipeline_frame(rgb, known, model)
            old_durations.append(time.perf_counter() - started)
            old_matches += matched
    old_wall = time.perf_counter() - wall_started
    old_cpu = time.process_time() - cpu_started
    old_frames = len(old_durations)

    # --- ours: Verify ∥ Check for the same capture, as auth-web issues them ---
    pool = ThreadPoolExecutor(max_workers=2)

    def ours() -> tuple[object, object]:
        check = pool.submit(stubs.check, capture, actions)
        verify = pool.submit(stubs.verify, capture, templates)
        return check.result(), verify.result()

    check, verify = ours()
    ours()
    new_durations = []
    before = processes.cpu_snapshot(pids)
    for _ in range(args.rounds):
        started = time.perf_counter()
        ours()
        new_durations.append(time.perf_counter() - started)
    new_cpu = sum(processes.cpu_delta(before, processes.cpu_snapshot(pids)).values())
    pool.shutdown()
    stubs.close()

    old_wall_per_frame = old_wall / old_frames
    old_cpu_per_frame = old_cpu / old_frames
    new_wall_per_frame = sum(new_durations) / len(new_durations) / LOGIN_FRAMES
    new_cpu_per_frame = new_cpu / len(new_durations) / LOGIN_FRAMES
    wall_ratio = old_wall_per_frame / new_wall_per_frame
    cpu_ratio = old_cpu_per_frame / new_cpu_per_frame if new_cpu_per_frame > 0 else float("nan")

    data = {
        "benchmark": "old_vs_new",
        "machine": machine,
        "clip": args.clip,
        "frames": describe(scenario.frames),
        "capture_start_ms": start_ms,
        "capture_accepted_by_services": bool(accepted),
        "old": {
            "frames_measured": old_frames,
            "latency_per_frame": report.summarise_ms(old_durations),
            "wall_seconds_per_frame": round(old_wall_per_frame, 4),
            "cpu_seconds_per_frame": round(old_cpu_per_frame, 4),
            "frames_matched": old_matches,
            "known_encodings": len(known),
            "cnn_training": training,
            "tensorflow_threads": "default (all cores)",
        },
        "new": {
            "requests_measured": len(new_durations),
            "frames_per_request": LOGIN_FRAMES,
            "latency_per_request": report.summarise_ms(new_durations),
            "wall_seconds_per_frame": round(new_wall_per_frame, 4),
            "cpu_seconds_per_frame": round(new_cpu_per_frame, 4),
            "live": check.live,  # type: ignore[attr-defined]
            "match": verify.match,  # type: ignore[attr-defined]
        },
        "ratio_wall_per_frame": round(wall_ratio, 2),
        "ratio_cpu_per_frame": round(cpu_ratio, 2),
        "cpu_count": os.cpu_count(),
    }
    rows = [
        [
            "old: face_encodings + compare_faces + predict, per frame",
            old_frames,
            round(old_wall_per_frame * 1000, 1),
            round(old_cpu_per_frame * 1000, 1),
            f"{old_matches}/{old_frames} frames matched",
        ],
        [
            "ours: Verify ∥ Check (8 frames) / 8",
            len(new_durations) * LOGIN_FRAMES,
            round(new_wall_per_frame * 1000, 1),
            round(new_cpu_per_frame * 1000, 1),
            f"live={check.live}, match={verify.match}",  # type: ignore[attr-defined]
        ],
        ["**ratio old / ours**", "", f"**{wall_ratio:.1f}×**", f"**{cpu_ratio:.1f}×**", "target ≥ 5×"],
    ]
    body = (
        f"Same 8-frame capture of `{args.clip}` (640×480 JPEG q85, 6 fps, starting at {start_ms} ms), "
        f"{args.rounds} rounds each side. Old CNN trained {training['epochs']} epochs on {training['images']} seed "
        "images. Old wall/CPU = this process (TensorFlow on all cores); ours = client-side wall time of the "
        "parallel pair and the services' CPU from /proc.\n\n"
        + report.markdown_table(["pipeline", "frames", "wall ms/frame", "CPU ms/frame", "decision"], rows)
    )
    json_path, md_path = report.write_result(args.name, "Old hobby pipeline vs our services (per frame)", data, body)
    print(body)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
