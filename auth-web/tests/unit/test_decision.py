"""The login and enrollment decisions, from plain proto response objects."""

from __future__ import annotations

import numpy as np
import pytest

from auth_web.decision import decide_enrollment, decide_login
from auth_web.reasons import OK, TEMPLATES_OUTDATED
from faceauth.liveness.v1 import liveness_pb2 as lv
from faceauth.recognition.v1 import recognition_pb2 as rc

MODEL = "dlib-resnet-v1"


def live(**overrides) -> lv.CheckResponse:  # type: ignore[no-untyped-def]
    fields = {
        "live": True,
        "reason": lv.LIVENESS_REASON_LIVE,
        "live_score": 0.93,
        "live_threshold": 0.5,
        "actions": [lv.ActionResult(action=lv.ACTION_BLINK, performed=True, frame_index=4)],
    }
    fields.update(overrides)
    return lv.CheckResponse(**fields)


def match(**overrides) -> rc.VerifyResponse:  # type: ignore[no-untyped-def]
    frames = [rc.FrameMatch(distance=0.31 + i / 100, matched=True) for i in range(8)]
    fields = {
        "match": True,
        "reason": rc.VERIFY_REASON_MATCH,
        "frames": frames,
        "matched_frames": 8,
        "threshold": 0.55,
        "min_matched_frames": 3,
        "model_version": MODEL,
    }
    fields.update(overrides)
    return rc.VerifyResponse(**fields)


def decide(check: lv.CheckResponse, verify: rc.VerifyResponse, versions=(MODEL,), **kw):  # type: ignore[no-untyped-def]
    options = {"challenge_length": 1, "min_matched_frames": 3, "template_model_versions": list(versions)}
    options.update(kw)
    return decide_login(check, verify, **options)


def test_live_and_matching_capture_is_accepted_with_scores() -> None:
    decision = decide(live(), match())
    assert decision.accepted and decision.reason == OK
    assert decision.live_score == pytest.approx(0.93)
    assert decision.match_distance == pytest.approx(0.31)
    assert decision.matched_frames == 8


def test_unset_measurements_are_not_read_as_values() -> None:
    # An uncompared frame has no distance (not 0.0, which would be a perfect match); no passive score is None.
    frames = [rc.FrameMatch(matched=False), rc.FrameMatch(distance=0.4, matched=True, compared=True)]
    check = live()
    check.ClearField("live_score")
    decision = decide(check, match(frames=frames))
    assert decision.match_distance == pytest.approx(0.4) and decision.live_score is None
    assert decision.details["frame_distances"] == [None, 0.4]
    assert decision.details["max_intra_capture_distance"] is None


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (lv.LIVENESS_REASON_SPOOF_SUSPECTED, "LIVENESS_SPOOF_SUSPECTED"),
        (lv.LIVENESS_REASON_STATIC_CAPTURE, "LIVENESS_STATIC_CAPTURE"),
        (lv.LIVENESS_REASON_CHALLENGE_NOT_MET, "LIVENESS_CHALLENGE_NOT_MET"),
        (lv.LIVENESS_REASON_MULTIPLE_FACES, "LIVENESS_MULTIPLE_FACES"),
    ],
)
def test_liveness_failure_refuses_even_a_perfect_match(reason: int, code: str) -> None:
    decision = decide(live(live=False, reason=reason, failed_checks=[reason]), match())
    assert not decision.accepted and decision.reason == code


def test_contradictory_liveness_answers_refuse() -> None:
    assert not decide(live(live=True, reason=lv.LIVENESS_REASON_SPOOF_SUSPECTED), match()).accepted
    assert not decide(live(live=False, reason=lv.LIVENESS_REASON_LIVE), match()).accepted
    assert decide(lv.CheckResponse(), match()).reason == "LIVENESS_UNSPECIFIED"


def test_an_action_not_reported_performed_refuses() -> None:
    not_done = [lv.ActionResult(action=lv.ACTION_BLINK, performed=False)]
    assert decide(live(actions=not_done), match()).reason == "LIVENESS_CHALLENGE_NOT_MET"
    # The service must report one result per requested action.
    assert decide(live(actions=[]), match()).reason == "LIVENESS_CHALLENGE_NOT_MET"
    assert decide(live(actions=[]), match(), challenge_length=0).accepted


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (rc.VERIFY_REASON_NO_MATCH, "VERIFY_NO_MATCH"),
        (rc.VERIFY_REASON_NOT_ENOUGH_FACES, "VERIFY_NOT_ENOUGH_FACES"),
        (rc.VERIFY_REASON_INCONSISTENT_IDENTITY, "VERIFY_INCONSISTENT_IDENTITY"),
    ],
)
def test_recognition_failure_refuses(reason: int, code: str) -> None:
    decision = decide(live(), match(match=False, reason=reason, matched_frames=1))
    assert not decision.accepted and decision.reason == code


def test_match_flag_without_match_reason_refuses() -> None:
    assert not decide(live(), match(reason=rc.VERIFY_REASON_UNSPECIFIED)).accepted
    assert not decide(live(), match(match=False)).accepted


def test_our_own_matched_frames_floor_applies() -> None:
    decision = decide(live(), match(matched_frames=2), min_matched_frames=3)
    assert not decision.accepted and decision.reason == "VERIFY_NO_MATCH"


def test_templates_from_another_model_version_refuse() -> None:
    decision = decide(live(), match(), versions=(MODEL, "older-model"))
    assert not decision.accepted and decision.reason == TEMPLATES_OUTDATED


def test_a_runtime_after_plus_in_the_model_version_keeps_templates_valid() -> None:
    # Templates enrolled with dlib's descriptor stay valid under its TFLite port and back (same embeddings).
    dlib_version, port_version = "dlib-resnet-v1/5pt/fr-models-0.3.0", "dlib-resnet-v1/5pt/fr-models-0.3.0+tflite"
    assert decide(live(), match(model_version=port_version), versions=(dlib_version, port_version)).accepted
    assert decide(live(), match(model_version=dlib_version), versions=(port_version,)).accepted
    # Only the part before "+" is compared: another model or alignment is still outdated, whatever its runtime.
    for template_version in ("dlib-resnet-v2/5pt/fr-models-0.3.0+tflite", "dlib-resnet-v1/68pt/fr-models-0.3.0"):
        decision = decide(live(), match(model_version=port_version), versions=(template_version,))
        assert not decision.accepted and decision.reason == TEMPLATES_OUTDATED
    decision = decide(live(), match(model_version=port_version), versions=("dlib-resnet-v1/5pt/fr-models-0.3.0tflite",))
    assert not decision.accepted


def test_liveness_is_reported_before_recognition() -> None:
    spoof = live(live=False, reason=lv.LIVENESS_REASON_SPOOF_SUSPECTED)
    decision = decide(spoof, match(match=False, reason=rc.VERIFY_REASON_NO_MATCH))
    assert decision.reason == "LIVENESS_SPOOF_SUSPECTED"
    assert decision.details["verify_reason"] == "VERIFY_NO_MATCH"


def _faces(vectors: list[np.ndarray], quality: float = 0.9, same_person: bool = True) -> rc.EncodeResponse:
    faces = [rc.FaceObservation(status=rc.FACE_STATUS_OK, quality=quality, embedding=v.tolist()) for v in vectors]
    return rc.EncodeResponse(faces=faces, model_version=MODEL, same_person=same_person, max_intra_distance=0.55)


def enroll(check: lv.CheckResponse, encoded: rc.EncodeResponse, **kw):  # type: ignore[no-untyped-def]
    options = {"challenge_length": 1, "min_faces": 3, "min_quality": 0.3, "max_templates": 2}
    options.update(kw)
    return decide_enrollment(check, encoded, **options)


def test_enrollment_keeps_the_best_faces_of_one_person() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=128) * 0.1
    vectors = [base + rng.normal(size=128) * 0.005 for _ in range(5)]
    encoded = _faces(vectors)
    encoded.faces[3].quality = 0.99
    encoded.faces.append(rc.FaceObservation(status=rc.FACE_STATUS_NO_FACE))
    result = enroll(live(), encoded)
    assert result.accepted and result.reason == OK
    assert len(result.templates) == 2 and result.templates[0].quality == pytest.approx(0.99)
    assert result.model_version == MODEL
    assert result.details["face_statuses"][-1] == "NO_FACE"


def test_enrollment_refuses_a_photo() -> None:
    rng = np.random.default_rng(2)
    vectors = [rng.normal(size=128) * 0.01 for _ in range(5)]
    spoof = live(live=False, reason=lv.LIVENESS_REASON_STATIC_CAPTURE)
    result = enroll(spoof, _faces(vectors))
    assert not result.accepted and result.reason == "LIVENESS_STATIC_CAPTURE" and result.templates == []


def test_enrollment_needs_enough_good_faces() -> None:
    rng = np.random.default_rng(3)
    vectors = [rng.normal(size=128) * 0.01 for _ in range(5)]
    assert enroll(live(), _faces(vectors, quality=0.1)).reason == "ENROLL_TOO_FEW_FACES"
    assert enroll(live(), _faces(vectors[:2])).reason == "ENROLL_TOO_FEW_FACES"


def test_enrollment_refuses_two_people() -> None:
    rng = np.random.default_rng(4)
    person_a, person_b = rng.normal(size=128) * 0.1, rng.normal(size=128) * 0.1
    # Recognition judges whether the faces are one person (its RECOGNITION_MAX_INTRA_DISTANCE).
    encoded = _faces([person_a, person_a, person_b, person_b], same_person=False)
    encoded.max_intra_capture_distance = 1.2
    result = enroll(live(), encoded)
    assert not result.accepted and result.reason == "ENROLL_INCONSISTENT_IDENTITY"
    assert result.details["max_intra_capture_distance"] == pytest.approx(1.2)


def reflected(**overrides) -> lv.FlashResult:  # type: ignore[no-untyped-def]
    fields = {
        "reflected": True,
        "score": 0.82,
        "threshold": 0.5,
        "face_gain": 0.07,
        "background_ratio": 0.12,
        "lag_ms": 90,
    }
    fields.update(overrides)
    return lv.FlashResult(**fields)


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (lv.LIVENESS_REASON_FLASH_NOT_REFLECTED, "LIVENESS_FLASH_NOT_REFLECTED"),
        (lv.LIVENESS_REASON_PLANAR_MOTION, "LIVENESS_PLANAR_MOTION"),
        (lv.LIVENESS_REASON_SYNTHETIC_MOTION, "LIVENESS_SYNTHETIC_MOTION"),
        (lv.LIVENESS_REASON_FRAME_TIMING, "LIVENESS_FRAME_TIMING"),
    ],
)
def test_the_new_liveness_reasons_become_audit_codes(reason: int, code: str) -> None:
    """Derived from the proto: no hand table to forget a reason in."""
    decision = decide(live(live=False, reason=reason, failed_checks=[reason]), match(), flash_sent=True)
    assert not decision.accepted and decision.reason == code
    assert decision.details["liveness_failed_checks"] == [code]
    result = enroll(live(live=False, reason=reason, failed_checks=[reason]), _faces([np.ones(128)] * 3))
    assert result.reason == code and result.details["liveness_failed_checks"] == [code]


def test_a_sent_flash_must_be_reported_checked_and_reflected() -> None:
    """Nothing implicit: a service that answered live without judging the flash (LIVENESS_CHECKS without
    `flash`) or with a result that says "not reflected" does not pass, on login or enrollment."""
    faces = _faces([np.ones(128) * 0.1] * 3)
    assert decide(live(), match(), flash_sent=True).reason == "FLASH_NOT_CHECKED"
    assert enroll(live(), faces, flash_sent=True).reason == "FLASH_NOT_CHECKED"
    unreflected = live(flash=reflected(reflected=False, score=0.2))
    assert decide(unreflected, match(), flash_sent=True).reason == "LIVENESS_FLASH_NOT_REFLECTED"
    assert enroll(unreflected, faces, flash_sent=True).reason == "LIVENESS_FLASH_NOT_REFLECTED"
    assert decide(live(flash=reflected()), match(), flash_sent=True).accepted
    assert enroll(live(flash=reflected()), faces, flash_sent=True).accepted
    # With the flash off (AUTH_FLASH=false) nothing is asked of it.
    assert decide(live(), match(), flash_sent=False).accepted


def test_the_flash_and_planarity_measurements_are_in_the_audit_details() -> None:
    decision = decide(live(flash=reflected(), planarity_residual=0.0412345), match(), flash_sent=True)
    assert decision.details["flash"] == {
        "reflected": True,
        "score": pytest.approx(0.82),
        "threshold": 0.5,
        "face_gain": pytest.approx(0.07),
        "background_ratio": pytest.approx(0.12),
        "lag_ms": 90,
    }
    assert decision.details["planarity_residual"] == pytest.approx(0.0412)
    bare = decide(live(), match())
    assert bare.details["flash"] is None and bare.details["planarity_residual"] is None
    result = enroll(live(flash=reflected(score=0.7)), _faces([np.ones(128) * 0.1] * 3), flash_sent=True)
    assert result.details["flash"]["score"] == pytest.approx(0.7)
