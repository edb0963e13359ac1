"""Fail loudly unless the face models and TensorFlow really load in this environment.

`import face_recognition` prints a hint and exits with status 0 when its model package cannot be
imported (e.g. setuptools >= 81 without pkg_resources), which would let a broken setup look fine.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fail(message: str) -> None:
    print(f"check_models: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    try:
        import face_recognition_models
    except Exception as error:  # ImportError of pkg_resources, missing package, ...
        fail(f"face_recognition_models does not import ({error!r}); is setuptools < 81 installed?")
    for locate in (
        "pose_predictor_model_location",
        "pose_predictor_five_point_model_location",
        "face_recognition_model_location",
    ):
        path = getattr(face_recognition_models, locate)()
        if not os.path.isfile(path):
            fail(f"model file missing: {path}")
    try:
        import face_recognition
    except SystemExit:
        fail("face_recognition exited during import: its models could not be loaded")
    import numpy as np

    blank = np.zeros((64, 64, 3), dtype=np.uint8)
    if face_recognition.face_locations(blank) != []:
        fail("the HOG face detector found a face in a blank image")
    import tensorflow as tf

    if int(tf.reduce_sum(tf.ones((2, 2)))) != 4:
        fail("TensorFlow computed a wrong result")
    print(f"check_models: ok (dlib models, TensorFlow {tf.__version__})")


if __name__ == "__main__":
    main()
