"""BatchInterpreter on a stand-in interpreter (the real runtimes are tested in the services that load them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceauth_common.batch_interpreter import BatchInterpreter


class SummingInterpreter:
    """An interpreter's API over a model that sums each input row; records resizes and allocations."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self._input: np.ndarray | None = None
        self._shape: list[int] | None = None

    def get_input_details(self) -> list[dict[str, int]]:
        return [{"index": 3}]

    def get_output_details(self) -> list[dict[str, int]]:
        return [{"index": 7}]

    def resize_tensor_input(self, index: int, shape: list[int]) -> None:
        self.calls.append(("resize", index, shape))
        self._shape = shape

    def allocate_tensors(self) -> None:
        self.calls.append("allocate")

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        assert index == 3 and self._shape == list(value.shape), "set before a resize to this batch"
        self._input = value

    def invoke(self) -> None:
        self.calls.append("invoke")

    def get_tensor(self, index: int) -> np.ndarray:
        assert index == 7 and self._input is not None
        return self._input.reshape(len(self._input), -1).sum(axis=1, dtype=np.float64)


def test_resizes_only_when_the_batch_size_changes() -> None:
    interpreter = SummingInterpreter()
    runner = BatchInterpreter(interpreter)
    ones = np.ones((2, 3), dtype=np.float32)
    for batch in (ones, ones * 2, np.ones((5, 3), dtype=np.float32), np.ones((5, 3), dtype=np.float32)):
        runner.run(batch)
    assert interpreter.calls == [
        ("resize", 3, [2, 3]),
        "allocate",
        "invoke",
        "invoke",
        ("resize", 3, [5, 3]),
        "allocate",
        "invoke",
        "invoke",
    ]


def test_returns_the_first_output_as_float32() -> None:
    output = BatchInterpreter(SummingInterpreter()).run(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert output.dtype == np.float32 and output.tolist() == [3.0, 12.0]
