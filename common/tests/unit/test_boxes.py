from __future__ import annotations

from faceauth_common.boxes import Box, downscale_factor


def test_downscale_factor_only_shrinks() -> None:
    assert downscale_factor(640, 480, 320) == 0.5
    assert downscale_factor(200, 100, 320) == 1.0


def test_box_found_on_a_half_size_copy_maps_back_outwards_and_clipped() -> None:
    # dlib's inclusive rectangle (10, 20)-(59, 69) on a half-size copy covers original pixels 20..119 x 40..139.
    assert Box.from_scaled(10, 20, 59, 69, 0.5, 640, 480) == Box(20, 40, 120, 140)
    # Detections may extend past the image edge: clip them.
    assert Box.from_scaled(-5, -3, 400, 300, 0.5, 640, 480) == Box(0, 0, 640, 480)


def test_geometry() -> None:
    box = Box(100, 50, 200, 250)
    assert (box.width, box.height, box.area) == (100, 200, 20_000)
    assert box.centre == (150.0, 150.0)
    assert round(box.size, 3) == 141.421
    assert Box(5, 5, 5, 9).area == 0
