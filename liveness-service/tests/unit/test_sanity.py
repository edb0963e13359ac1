import numpy as np

from faceauth_common.boxes import Box
from liveness_service import sanity

T = sanity.SanityThresholds()


def boxes_along(centres, size=200):
    return [Box(int(x - size / 2), int(y - size / 2), int(x + size / 2), int(y + size / 2)) for x, y in centres]


def judge(counts, boxes, diffs=None, colours=None, span=1500.0, thresholds=T):
    n = len(counts)
    diffs = diffs if diffs is not None else [None] + [5.0] * (n - 1)
    colours = colours if colours is not None else [None] + [0.1] * (n - 1)
    return sanity.judge_sanity(counts, boxes, diffs, colours, span, thresholds)


def test_a_steady_natural_capture_passes():
    boxes = boxes_along([(320 + 5 * i, 240) for i in range(8)])
    assert judge([1] * 8, boxes) == []


def test_each_failure_has_its_own_reason():
    boxes = boxes_along([(320, 240)] * 8)
    assert judge([1] * 3, boxes[:3]) == [sanity.TOO_FEW_FRAMES]
    assert judge([1] * 8, boxes, span=300.0) == [sanity.CAPTURE_TOO_SHORT]
    assert judge([1, 1, 0, 0, 1, 1, 1, 1], [*boxes[:2], None, None, *boxes[4:]]) == [sanity.NO_FACE]
    assert judge([1, 2, 1, 1, 1, 1, 1, 1], boxes) == [sanity.MULTIPLE_FACES]
    assert judge([1] * 8, boxes, diffs=[None] + [0.2] * 7) == [sanity.STATIC_CAPTURE]


def test_one_faceless_frame_in_ten_is_tolerated():
    boxes = boxes_along([(320, 240)] * 10)
    boxes[4] = None
    assert judge([1, 1, 1, 1, 0, 1, 1, 1, 1, 1], boxes) == []


def test_track_breaks_on_a_jump_a_scale_change_or_a_colour_change():
    jump = boxes_along([(200, 240)] * 4 + [(450, 240)] * 4)  # 250 px for a 200 px face = 1.25 face sizes
    assert judge([1] * 8, jump) == [sanity.TRACK_DISCONTINUOUS]
    grow = boxes_along([(320, 240)] * 4, 150) + boxes_along([(320, 240)] * 4, 260)
    assert judge([1] * 8, grow) == [sanity.TRACK_DISCONTINUOUS]
    steady = boxes_along([(320, 240)] * 8)
    assert judge([1] * 8, steady, colours=[None, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1, 0.1]) == [sanity.TRACK_DISCONTINUOUS]


def test_span_comes_from_frame_times_or_the_nominal_rate():
    assert sanity.capture_span_ms(10, [0, 100, 900], 6.0) == 900.0
    assert sanity.capture_span_ms(10, [], 6.0) == 1500.0


def test_patch_and_colour_differences_of_real_pixels():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    box = Box(200, 100, 400, 300)
    same = sanity.face_patch(image, box)
    assert sanity.patch_differences([same, same.copy()]) == [None, 0.0]
    shifted = sanity.face_patch(np.roll(image, 40, axis=1), box)
    assert sanity.patch_differences([same, shifted])[1] > 10
    signature = sanity.colour_signature(image, box)
    assert sanity.colour_changes([signature, signature, None]) == [None, 0.0, None]
    red = np.zeros_like(image)
    red[..., 0] = 200
    assert sanity.colour_changes([signature, sanity.colour_signature(red, box)])[1] > 0.5
