"""Model objects that must not be used by two threads at once.

dlib's detectors, shape predictors and DNNs and TFLite interpreters keep scratch state inside the
object, and gRPC serves calls on a thread pool: one HOG detector shared by four threads segfaults.
Each such object is either pooled (``InstancePool`` with one instance per server thread: for calls
that release the GIL, so threads really run in parallel) or used under its own lock (for calls that
hold the GIL anyway, where copies would cost memory and gain nothing). bench/gil.py measures which
is which and what each choice gives (bench/results/gil*.md).
"""

from __future__ import annotations

import contextlib
import pickle
import queue
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class InstancePool(Generic[T]):
    """``size`` instances made up front (at model load, not at a request); a thread borrows one at a time.

    With as many instances as server threads a borrow never waits; with fewer it waits for one to
    come back, which is what a lock would do.
    """

    def __init__(self, factory: Callable[[], T], size: int) -> None:
        if size < 1:
            raise ValueError("an instance pool needs at least one instance")
        self._free: queue.SimpleQueue[T] = queue.SimpleQueue()
        for _ in range(size):
            self._free.put(factory())

    @classmethod
    def of_copies(cls, original: T, size: int) -> InstancePool[T]:
        """``size`` independent copies of ``original``, made by pickling it once: far cheaper than building each
        (a dlib HOG detector comes back from its pickle in ~2 ms; ``get_frontal_face_detector()`` takes ~0.4 s)."""
        state = pickle.dumps(original)
        return cls(lambda: pickle.loads(state), size)  # noqa: S301 - our own object, pickled a line above

    @contextlib.contextmanager
    def borrow(self) -> Iterator[T]:
        instance = self._free.get()
        try:
            yield instance
        finally:
            self._free.put(instance)
