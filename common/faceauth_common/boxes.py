"""Face boxes in image pixels, shared by the services that detect faces (no dlib or OpenCV here)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A face box in original-image pixels; ``right`` and ``bottom`` are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    @property
    def size(self) -> float:
        """Geometric mean of width and height (the face's scale)."""
        return math.sqrt(max(self.area, 1))

    @classmethod
    def from_scaled(cls, left: int, top: int, right: int, bottom: int, scale: float, width: int, height: int) -> Box:
        """Map a detector's box found on a copy scaled by ``scale`` back to the ``width``×``height`` original.

        dlib rectangles are inclusive (``right``/``bottom`` are the last pixel), hence the ``+ 1``;
        the result is rounded outwards and clipped to the image.
        """
        return cls(
            left=max(0, math.floor(left / scale)),
            top=max(0, math.floor(top / scale)),
            right=min(width, math.ceil((right + 1) / scale)),
            bottom=min(height, math.ceil((bottom + 1) / scale)),
        )


def downscale_factor(width: int, height: int, max_side: int) -> float:
    """The factor (≤ 1) that brings the longer side down to ``max_side``."""
    return min(1.0, max_side / max(width, height))
