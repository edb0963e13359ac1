"""The admin's view of a liveness answer for the flash calibration (plain data, no Flask)."""

from __future__ import annotations

import pytest

from auth_web.calibration import FrameMeasurement, summarise
from auth_web.ceremony import Capture
from faceauth.liveness.v1 import liveness_pb2 as lv

STEPS = [{"colour": "#ff0000", "duration_ms": 400}, {"colour": "#00ffff", "duration_ms": 380}]


def answer() -> lv.CheckResponse:
    response = lv.CheckResponse(
        live=False,
        reason=lv.LIVENESS_REASON_FLASH_NOT_REFLECTED,
        failed_checks=[lv.LIVENESS_REASON_FLASH_NOT_REFLECTED, lv.LIVENESS_REASON_PLANAR_MOTION],
        flash=lv.FlashResult(reflected=False, score=0.31, threshold=0.6, face_gain=0.01, background_ratio=0.9),
        planarity_residual=0.02,
    )
    measured = response.frames.add(face_count=1, flash_expected_rgb=0xFF0000)
    measured.skin_rgb.extend([0.3, 0.2, 0.1])
    measured.background_rgb.extend([0.05, 0.05, 0.05])
    response.frames.add(face_count=0)
    return response


def test_the_summary_names_reasons_like_the_audit_and_keeps_unmeasured_frames_empty() -> None:
    result = summarise(answer(), Capture([b"a", b"b"], [0, 98], flash_start_ms=-20), STEPS, 10.0)
    assert (result.live, result.reason) == (False, "LIVENESS_FLASH_NOT_REFLECTED")
    assert result.failed_checks == ["LIVENESS_FLASH_NOT_REFLECTED", "LIVENESS_PLANAR_MOTION"]
    assert result.flash is not None and result.flash["score"] == pytest.approx(0.31)
    assert result.flash["reflected"] is False and result.planarity_residual == pytest.approx(0.02)
    assert result.frames == [
        FrameMeasurement(0, "#ff0000", [0.3, 0.2, 0.1], [0.05, 0.05, 0.05]),
        FrameMeasurement(98, None, None, None),
    ]
    assert result.steps == STEPS and result.flash_start_ms == -20


def test_without_frame_times_the_frames_are_evenly_spaced_and_no_flash_result_is_null() -> None:
    response = answer()
    response.ClearField("flash")
    result = summarise(response, Capture([b"a", b"b"], []), STEPS, 10.0)
    assert [frame.time_ms for frame in result.frames] == [0, 100]
    assert result.flash is None
