"""The face descriptor: 150x150 face chips in, 128-d embeddings out, many chips in one call.

Two implementations of the same network (dlib's ``dlib_face_recognition_resnet_model_v1``):

- ``TFLiteDescriptor`` (default, ``RECOGNITION_DESCRIPTOR=tflite``): the port in
  ``models/dlib_face_recognition_resnet_v1.tflite`` (made by ``tools/port_descriptor.py`` from the same
  weights; parity with dlib in bench/results/descriptor_parity.md) on the LiteRT runtime (``ai-edge-litert``)
  with XNNPACK. ``invoke`` releases the GIL, so there is one interpreter per server thread.
- ``DlibDescriptor`` (``RECOGNITION_DESCRIPTOR=dlib``): dlib's own ``compute_face_descriptor``, kept for
  comparison and for ``RECOGNITION_NUM_JITTERS`` > 1. It holds the GIL, so one instance behind a lock.

The chip is dlib's (``dlib.get_face_chip(image, landmarks, 150, 0.25)``, the same alignment
``compute_face_descriptor(image, landmarks)`` uses), so both give the same embedding space.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from faceauth_common.batch_interpreter import BatchInterpreter
from faceauth_common.threadsafe import InstancePool

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "dlib_face_recognition_resnet_v1.tflite"
CHIP_SIZE = 150
CHIP_PADDING = 0.25
EMBEDDING_SIZE = 128


class Descriptor(Protocol):
    kind: str

    def compute(self, chips: np.ndarray) -> np.ndarray:
        """(n, 150, 150, 3) uint8 RGB chips -> (n, 128) float64 embeddings."""
        ...

    def warm_up(self, chip: np.ndarray) -> list[np.ndarray]:
        """Run every instance on ``chip`` alone and on a batch of two (the usual Verify batch)."""
        ...


def _check_chips(chips: np.ndarray) -> None:
    if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"expected (n, {CHIP_SIZE}, {CHIP_SIZE}, 3) chips, got {chips.shape}")


class TFLiteDescriptor:
    """The TFLite port; ``instances`` interpreters (one per server thread), each using ``num_threads``."""

    kind = "tflite"

    def __init__(self, model_path: Path = DEFAULT_MODEL_PATH, num_threads: int = 1, instances: int = 1) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"descriptor model {self.model_path} is missing")
        self.instances = instances
        self._interpreters = InstancePool(lambda: _BatchInterpreter(self.model_path, num_threads), instances)

    def compute(self, chips: np.ndarray) -> np.ndarray:
        _check_chips(chips)
        if len(chips) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float64)
        batch = np.ascontiguousarray(chips, dtype=np.float32)
        with self._interpreters.borrow() as interpreter:
            return interpreter.run(batch).astype(np.float64)

    def warm_up(self, chip: np.ndarray) -> list[np.ndarray]:
        batches = [chip[None].astype(np.float32), np.stack([chip, chip]).astype(np.float32)]
        outputs = []
        with contextlib.ExitStack() as stack:
            # Borrow every interpreter at once, so each is run (the pool has exactly ``instances``).
            interpreters = [stack.enter_context(self._interpreters.borrow()) for _ in range(self.instances)]
            for interpreter in interpreters:
                outputs += [interpreter.run(batch).astype(np.float64) for batch in batches]
        return outputs


class _BatchInterpreter:
    """One LiteRT interpreter whose input is resized to the batch it is given (one thread at a time)."""

    def __init__(self, model_path: Path, num_threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._runner = BatchInterpreter(Interpreter(model_path=str(model_path), num_threads=num_threads))

    def run(self, batch: np.ndarray) -> np.ndarray:
        output = self._runner.run(batch)
        if output.shape != (batch.shape[0], EMBEDDING_SIZE):
            raise RuntimeError(f"the descriptor model returned shape {output.shape}")
        return output


class DlibDescriptor:
    """dlib's ``compute_face_descriptor`` on chips (with its random jitter when ``num_jitters`` > 1)."""

    kind = "dlib"

    def __init__(self, model_path: Path, num_jitters: int = 1) -> None:
        import dlib

        self._encoder = dlib.face_recognition_model_v1(str(model_path))
        self.num_jitters = num_jitters
        self._lock = threading.Lock()

    def compute(self, chips: np.ndarray) -> np.ndarray:
        _check_chips(chips)
        if len(chips) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float64)
        batch = [np.ascontiguousarray(chip, dtype=np.uint8) for chip in chips]
        with self._lock:
            descriptors = self._encoder.compute_face_descriptor(batch, self.num_jitters)
        return np.asarray([np.asarray(d) for d in descriptors], dtype=np.float64)

    def warm_up(self, chip: np.ndarray) -> list[np.ndarray]:
        return [self.compute(chip[None]), self.compute(np.stack([chip, chip]))]
