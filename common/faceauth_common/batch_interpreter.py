"""A TFLite interpreter run on batches of any size, without depending on a TFLite runtime.

The services make the interpreter themselves (recognition with LiteRT, liveness with LiteRT or tensorflow's
``tf.lite``) and hand it to ``BatchInterpreter``; this module only uses the interpreter API they share
(``get_input_details``, ``resize_tensor_input``, ``allocate_tensors``, ``set_tensor``, ``invoke``,
``get_tensor``). Like the interpreter itself, one instance is used by one thread at a time (pool them with
``faceauth_common.threadsafe.InstancePool``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class BatchInterpreter:
    """One interpreter whose first input is resized to the batch it is given (reallocated only when the batch
    size changes) and whose first output is returned as float32."""

    def __init__(self, interpreter: Any) -> None:
        self._interpreter = interpreter
        self._input = interpreter.get_input_details()[0]["index"]
        self._output = interpreter.get_output_details()[0]["index"]
        self._batch = -1

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output), dtype=np.float32)
