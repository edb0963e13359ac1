"""InstancePool: instances made up front, one borrower each; copies are independent and behave like the original."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import dlib

from faceauth_common.threadsafe import InstancePool

TWO_FACES = (
    Path(__file__).resolve().parents[3]
    / "tests/data/faces/face_recognition_examples/examples/knn_examples/test/obama_and_biden.jpg"
)


def test_each_borrower_gets_its_own_instance_and_a_borrow_waits_for_a_free_one() -> None:
    pool = InstancePool(lambda: [], 2)
    with pool.borrow() as first, pool.borrow() as second:
        assert first is not second
        waited = threading.Event()

        def third_borrower() -> None:
            with pool.borrow():
                waited.set()

        thread = threading.Thread(target=third_borrower)
        thread.start()
        assert not waited.wait(0.2)  # both are out
    thread.join(5)
    assert waited.is_set()


def test_copies_of_a_hog_detector_are_separate_objects_that_find_the_same_faces() -> None:
    original = dlib.get_frontal_face_detector()
    pool = InstancePool.of_copies(original, 2)
    image = cv2.imread(str(TWO_FACES), cv2.IMREAD_GRAYSCALE)
    expected = original.run(image, 0, 0.0)
    assert len(expected[0]) >= 2  # both faces (and whatever else HOG takes for one)
    with pool.borrow() as first, pool.borrow() as second:
        assert first is not original and second is not first
        for copy in (first, second):
            rects, scores, kinds = copy.run(image, 0, 0.0)
            assert [(r.left(), r.top(), r.right(), r.bottom()) for r in rects] == [
                (r.left(), r.top(), r.right(), r.bottom()) for r in expected[0]
            ]
            assert scores == expected[1] and kinds == expected[2]
