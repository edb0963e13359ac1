"""Passive presentation-attack detection: p(live) for face crops with context, batched through TFLite."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceauth_common.boxes import Box
from faceauth_common.threadsafe import InstancePool
from liveness_service.faces import crop_with_context

PACKAGE_MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = PACKAGE_MODELS / "minifasnet_v2.tflite"


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
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = -1

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output), dtype=np.float32).reshape(-1)


class PassiveModel:
    """A model file plus its spec: face boxes in, p(live) per face out."""

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
