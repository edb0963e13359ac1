"""bench/photo_mode.py's arithmetic: a refused image makes its pairs non-matches, the rates and the 10-fold
accuracy; and the mirror embedding of its flip test-time augmentation (on a photo from tests/data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import photo_mode
from recognition_service.engine import DetectionSettings, FaceEngine, FaceStatus
from recognition_service.quality import QualitySettings
from recognition_service.tools.evaluate import Pair
from recognition_service.tools.images import load_image_file


def _pairs() -> tuple[list[Pair], dict[Path, photo_mode.Encoded]]:
    a1, a2, b1, refused = Path("a1"), Path("a2"), Path("b1"), Path("refused")
    encoded = {
        a1: photo_mode.Encoded(np.zeros(128), "OK"),
        a2: photo_mode.Encoded(np.full(128, 0.3 / np.sqrt(128)), "OK"),  # 0.3 from a1
        b1: photo_mode.Encoded(np.full(128, 0.9 / np.sqrt(128)), "OK"),  # 0.9 from a1, 0.6 from a2
        refused: photo_mode.Encoded(None, "MULTIPLE_FACES"),
    }
    pairs = [
        Pair(a1, a2, True, "t"),
        Pair(a1, refused, True, "t"),
        Pair(a1, b1, False, "t"),
        Pair(a2, b1, False, "t"),
        Pair(b1, refused, False, "t"),
    ]
    return pairs, encoded


def test_a_refused_image_makes_its_pairs_non_matches() -> None:
    pairs, encoded = _pairs()
    distances, same = photo_mode.pair_distances(pairs, encoded)
    assert distances[0] == pytest.approx(0.3) and distances[3] == pytest.approx(0.6)
    assert np.isinf(distances[1]) and np.isinf(distances[4])
    result = photo_mode.at_threshold(distances, same, 0.55)
    # Correct: (a1,a2) match, (a1,b1), (a2,b1), (b1,refused) non-matches; wrong: the refused genuine pair.
    assert result == {"pairs": 5, "accuracy": 0.8, "fmr": 0.0, "fnmr": 0.5}
    assert photo_mode.at_threshold(distances, same, 0.65)["fmr"] == pytest.approx(1 / 3, abs=1e-4)


def test_summary_counts_refused_images_and_reasons() -> None:
    pairs, encoded = _pairs()
    summary = photo_mode.summarise(pairs, encoded, 0.55)
    assert (summary["images"], summary["images_refused"], summary["pairs_with_a_refused_image"]) == (4, 1, 2)
    assert summary["refusals_by_reason"] == {"MULTIPLE_FACES": 1}
    assert summary["usable_pairs_only"]["0.55"]["accuracy"] == 1.0


def test_ten_fold_accuracy_picks_the_threshold_on_the_other_folds() -> None:
    rng = np.random.default_rng(1)
    same = np.repeat([True, False], 100)
    distances = np.where(same, rng.uniform(0.2, 0.5, 200), rng.uniform(0.6, 1.0, 200))
    result = photo_mode.ten_fold_accuracy(distances, same)
    assert result["accuracy"] == 1.0 and 0.5 <= result["threshold_median"] < 0.6
    swapped = photo_mode.ten_fold_accuracy(distances, ~same)  # labels reversed: no threshold separates them
    assert swapped["accuracy"] <= 0.55


def test_the_mirror_embedding_is_the_same_face(test_data: Path) -> None:
    """The flipped photo's embedding is close to the photo's (same person) but not equal (a real second
    view), and the flip of the flip gives the photo's own embedding back."""
    engine = FaceEngine.load()
    image = load_image_file(test_data / "faces/face_recognition_examples/examples/obama.jpg")
    observation = engine.encode(image, DetectionSettings(max_side=800), QualitySettings())
    assert observation.status is FaceStatus.OK
    direct = observation.embedding.copy()
    flipped, twin = photo_mode.mirrored(image, observation, engine)
    mirror = engine.embed(flipped, twin)
    assert 0.01 < float(np.linalg.norm(mirror - direct)) < 0.3
    back, twin_of_twin = photo_mode.mirrored(flipped, twin, engine)
    assert np.array_equal(back, image)
    assert float(np.linalg.norm(engine.embed(back, twin_of_twin) - direct)) < 1e-3
    averaged = photo_mode.flip_averaged_embedding(engine, image, observation)
    assert np.allclose(averaged, (direct + mirror) / 2, atol=1e-6)
