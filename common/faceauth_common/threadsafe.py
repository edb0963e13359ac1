"""Model objects that must not be used by two threads at once.

dlib's detectors, shape predictors and DNNs and TFLite interpreters keep scratch state inside the
object, and gRPC serves calls on a thread pool: one HOG detector shared by four threads segfaults.
Each such object is either made once per thread (``PerThread``: for calls that release the GIL, so
threads really run in parallel) or used under its own lock (for calls that hold the GIL anyway,
where a copy per thread would cost memory and gain nothing). bench/gil.py measures which is which.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerThread(Generic[T]):
    """One instance per thread, made by ``factory`` on that thread's first ``get``."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._local = threading.local()

    def get(self) -> T:
        try:
            return self._local.instance
        except AttributeError:
            self._local.instance = instance = self._factory()
            return instance
