"""Reading image files for the offline tools (bulk-encode CLI, evaluation).

The gRPC API accepts only JPEG/PNG through ``faceauth_common.imaging``; operators' folders may hold
other formats Pillow reads (WebP, BMP...), so the offline tools use Pillow directly, still with the
pixel cap and EXIF orientation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MAX_FILE_PIXELS = 40_000_000


def load_image_file(path: Path, max_pixels: int = MAX_FILE_PIXELS) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB array; raises ValueError/OSError for unreadable or huge files."""
    with Image.open(path) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(f"{width}x{height} pixels is over the limit of {max_pixels}")
        image.load()
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
