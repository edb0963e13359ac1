"""Passive presentation-attack detection: p(live) for face crops with context, batched through TFLite.

The passive model is described by a JSON spec in ``models/`` (or an operator's folder): either one model (its
``.tflite`` beside the spec; input size, box scale, threshold) or a fusion of several (``members``: their specs' names
beside it, the fused version string and threshold). A fusion scores every face with each member on the member's own
context crop and averages their p(live), as Minivision's Silent-Face pipeline sums its two models' softmax outputs.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceauth_common.batch_interpreter import BatchInterpreter
from faceauth_common.boxes import Box
from faceauth_common.threadsafe import InstancePool
from liveness_service.faces import crop_with_context

#: ``map``, or an executor's ``map``.
Mapper = Callable[..., Iterator[np.ndarray]]

PACKAGE_MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = PACKAGE_MODELS / "minifasnet_v2.tflite"
# The shipped passive model: MiniFASNetV2 at 2.7x and MiniFASNetV1SE at 4.0x, fused (LIVENESS_PASSIVE_MODEL).
DEFAULT_PASSIVE = "silent_face_fused"


def resolve_spec(value: str) -> Path:
    """A spec name shipped in models/ (``minifasnet_v2``), or a path to a spec .json or to a .tflite with its .json."""
    if "/" not in value and not value.endswith((".json", ".tflite")):
        return PACKAGE_MODELS / f"{value}.json"
    return Path(value).with_suffix(".json")


@dataclass(frozen=True)
class ModelSpec:
    """How to feed a model: read from the JSON file beside the .tflite file."""

    name: str
    version: str
    input_size: int
    box_scale: float
    threshold: float

    @classmethod
    def for_model(cls, model_path: Path) -> ModelSpec:
        meta = json.loads(model_path.with_suffix(".json").read_text())
        return cls(
            name=str(meta["name"]),
            version=str(meta["version"]),
            input_size=int(meta["input_size"]),
            box_scale=float(meta["box_scale"]),
            threshold=float(meta["threshold"]),
        )


@dataclass(frozen=True)
class PassiveSpec:
    """What the service runs as its passive model: one or more member models (.tflite paths) and one threshold."""

    name: str
    version: str
    threshold: float
    members: tuple[Path, ...]

    @classmethod
    def load(cls, spec_path: Path) -> PassiveSpec:
        """Raises ValueError (missing files, no members) so settings can report the bad value."""
        if not spec_path.is_file():
            raise ValueError(f"{spec_path} does not exist")
        meta = json.loads(spec_path.read_text())
        if "members" in meta:
            members = tuple(spec_path.with_name(f"{member}.tflite") for member in meta["members"])
            if not members:
                raise ValueError(f"{spec_path}: a fusion needs at least one member")
        else:
            members = (spec_path.with_suffix(".tflite"),)
        for member in members:
            if not member.is_file() or not member.with_suffix(".json").is_file():
                raise ValueError(f"{spec_path}: member {member} (and its .json spec beside it) must exist")
        return cls(str(meta["name"]), str(meta["version"]), float(meta["threshold"]), members)


class TFLiteScorer:
    """Runs a p(live) TFLite model on a batch of BGR uint8 crops in one invoke.

    The model takes float32 BGR 0..255 NHWC and returns p(live) per crop; its own preprocessing
    (scaling) is inside the graph, so every shipped model is fed the same way. An interpreter is
    not thread-safe, and ``invoke`` releases the GIL, so there is one per server thread (the model
    is 1.8 MB; bench/results/gil.md: 1.8× the calls per second of one interpreter behind a lock).
    """

    def __init__(self, model_path: Path, num_threads: int = 1, instances: int = 1) -> None:
        self._interpreters = InstancePool(lambda: _BatchInterpreter(model_path, num_threads), instances)

    def score(self, crops_bgr: np.ndarray) -> np.ndarray:
        if len(crops_bgr) == 0:
            return np.zeros((0,), dtype=np.float32)
        with self._interpreters.borrow() as interpreter:
            return interpreter.run(np.ascontiguousarray(crops_bgr, dtype=np.float32))


class _BatchInterpreter:
    """One TFLite interpreter whose input is resized to the batch it is given (one thread only)."""

    def __init__(self, model_path: Path, num_threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        with warnings.catch_warnings():
            # tf.lite.Interpreter warns that it moves to the ai_edge_litert package; it is the same runtime.
            warnings.simplefilter("ignore", UserWarning)
            self._runner = BatchInterpreter(Interpreter(model_path=str(model_path), num_threads=num_threads))

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._runner.run(batch).reshape(-1)


class MemberModel:
    """One model file plus its spec: face boxes in, p(live) per face out (on its own context crop)."""

    def __init__(self, model_path: Path, num_threads: int = 1, instances: int = 1) -> None:
        self.path = model_path
        self.spec = ModelSpec.for_model(model_path)
        self.scorer = TFLiteScorer(model_path, num_threads, instances)

    def crops(self, images_rgb: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
        """BGR uint8 crops with context, (N, size, size, 3); cropped and resized in RGB, then reordered (cheap)."""
        size = self.spec.input_size
        if not boxes:
            return np.zeros((0, size, size, 3), np.uint8)
        rgb = [
            crop_with_context(image, box, self.spec.box_scale, size)
            for image, box in zip(images_rgb, boxes, strict=True)
        ]
        return np.ascontiguousarray(np.stack(rgb)[..., ::-1])

    def score(self, images_rgb: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
        return self.scorer.score(self.crops(images_rgb, boxes))


class PassiveModel:
    """The passive model the service runs: its members each score every face (one batched invoke per member, one
    interpreter per member and server thread), the p(live) is their mean."""

    def __init__(self, spec: PassiveSpec, num_threads: int = 1, instances: int = 1) -> None:
        self.spec = spec
        self.members = [MemberModel(path, num_threads, instances) for path in spec.members]

    def member_scores(self, images_rgb: list[np.ndarray], boxes: list[Box], run: Mapper = map) -> np.ndarray:
        """p(live) per face and member, (N, members); ``run`` maps the members (an executor's ``map`` scores
        them side by side: LiteRT's invoke releases the GIL)."""
        if not boxes:
            return np.zeros((0, len(self.members)), np.float32)
        return np.stack(list(run(lambda member: member.score(images_rgb, boxes), self.members)), axis=1)

    def score(self, images_rgb: list[np.ndarray], boxes: list[Box], run: Mapper = map) -> np.ndarray:
        return self.member_scores(images_rgb, boxes, run).mean(axis=1)
