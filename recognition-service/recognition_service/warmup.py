"""The synthetic image the face engine warms up on (no real person's image is bundled)."""

from __future__ import annotations

import cv2
import numpy as np


def synthetic_face(size: int) -> np.ndarray:
    """A plain face-like drawing used for warm-up (no real person's image is bundled)."""
    image = np.full((size, size, 3), 200, dtype=np.uint8)
    centre = (size // 2, size // 2 + size // 20)
    cv2.ellipse(image, centre, (size // 4, size // 3), 0, 0, 360, (205, 160, 130), -1)
    for dx in (-size // 10, size // 10):
        cv2.ellipse(
            image, (size // 2 + dx, size // 2 - size // 20), (size // 25, size // 50), 0, 0, 360, (40, 30, 30), -1
        )
    cv2.line(image, (size // 2, size // 2), (size // 2 - size // 40, size // 2 + size // 12), (150, 110, 90), 2)
    cv2.ellipse(image, (size // 2, size // 2 + size // 6), (size // 12, size // 40), 0, 0, 360, (120, 60, 60), -1)
    return image
