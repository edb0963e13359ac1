"""Encode and Verify over gRPC against the real server with real photos; bad input never breaks it."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import grpc
import numpy as np
import pytest
from PIL import Image

from faceauth.recognition.v1 import recognition_pb2 as pb
from recognition_service.engine import DetectionSettings, model_version

TIMEOUT = 30


@pytest.fixture(scope="module")
def photo_bytes(photos):
    return {name: path.read_bytes() for name, path in photos.items()}


@pytest.fixture(scope="module")
def login_frames(webcam_frame, jpeg):
    def frames(name, count=4):
        return [jpeg(webcam_frame(name, shift)) for shift in range(0, 6 * count, 6)]

    return frames


@pytest.fixture(scope="module")
def enrolled(stub, photo_bytes):
    """Templates from Encode, as auth-web stores them at enrollment."""
    response = stub.Encode(pb.EncodeRequest(images=[photo_bytes["obama"], photo_bytes["biden"]]), timeout=TIMEOUT)
    assert [f.status for f in response.faces] == [pb.FACE_STATUS_OK, pb.FACE_STATUS_OK]
    return {
        "obama": pb.Template(embedding=response.faces[0].embedding),
        "biden": pb.Template(embedding=response.faces[1].embedding),
    }


def test_encode_reports_face_box_quality_and_embedding(stub, photo_bytes, photos):
    response = stub.Encode(pb.EncodeRequest(images=[photo_bytes["obama2"]]), timeout=TIMEOUT)
    # The default descriptor is the TFLite port; its version names it after the "+" (engine.model_version).
    assert response.model_version == model_version("tflite")
    (face,) = response.faces
    assert face.status == pb.FACE_STATUS_OK
    assert len(face.embedding) == 128 and np.all(np.isfinite(face.embedding))
    width, height = Image.open(photos["obama2"]).size
    assert 0 <= face.box.left < face.box.right <= width and 0 <= face.box.top < face.box.bottom <= height
    assert face.box.right - face.box.left > 150  # original pixels, not the downscaled working size
    assert face.detection_score > 0 and 0 < face.quality <= 1 and face.sharpness > 0 and face.brightness > 0


def test_encode_gives_a_reason_per_image(stub, photo_bytes, rgb, engine, jpeg):
    image = rgb("obama")
    box = engine.detect(image, DetectionSettings(max_side=800))[0][0]
    no_face = jpeg(np.ascontiguousarray(image[box.bottom + 40 :]))
    response = stub.Encode(
        pb.EncodeRequest(
            images=[photo_bytes["selfie_many"], no_face, photo_bytes["obama_240p"], photo_bytes["biden2"]]
        ),
        timeout=TIMEOUT,
    )
    assert [f.status for f in response.faces] == [
        pb.FACE_STATUS_MULTIPLE_FACES,
        pb.FACE_STATUS_NO_FACE,
        pb.FACE_STATUS_FACE_TOO_SMALL,
        pb.FACE_STATUS_OK,
    ]
    assert all(len(f.embedding) == 0 for f in response.faces[:3])
    # One embedded face: nothing to compare, so one person.
    assert response.same_person and not response.HasField("max_intra_capture_distance")


def test_encode_says_whether_the_faces_are_one_person(stub, photo_bytes):
    one = stub.Encode(pb.EncodeRequest(images=[photo_bytes["obama2"], photo_bytes["obama3"]]), timeout=TIMEOUT)
    assert one.same_person and 0 < one.max_intra_capture_distance <= one.max_intra_distance
    assert one.max_intra_distance == pytest.approx(0.55)
    mixed = stub.Encode(
        pb.EncodeRequest(images=[photo_bytes["obama2"], photo_bytes["obama3"], photo_bytes["biden2"]]), timeout=TIMEOUT
    )
    assert not mixed.same_person and mixed.max_intra_capture_distance > mixed.max_intra_distance


def test_verify_accepts_the_enrolled_person_from_other_photos(stub, enrolled, login_frames):
    frames = login_frames("obama2", 3) + login_frames("obama3", 3) + login_frames("obama_knn", 2)
    response = stub.Verify(pb.VerifyRequest(frames=frames, templates=[enrolled["obama"]]), timeout=TIMEOUT)
    assert response.match and response.reason == pb.VERIFY_REASON_MATCH
    assert response.matched_frames >= response.min_matched_frames == 2
    assert response.threshold == pytest.approx(0.55)
    assert len(response.frames) == 8 and response.compared_frames >= 2
    for frame in response.frames:
        assert len(frame.face.embedding) == 0
        # Frames the decision did not need are left unexamined (RECOGNITION_VERIFY_OBSERVE_ALL=false).
        assert frame.face.status in (pb.FACE_STATUS_OK, pb.FACE_STATUS_UNSPECIFIED)
        if frame.compared:
            assert frame.face.status == pb.FACE_STATUS_OK and 0 <= frame.distance <= response.threshold
        else:
            assert not frame.HasField("distance")


def test_verify_rejects_another_person(stub, enrolled, login_frames):
    response = stub.Verify(
        pb.VerifyRequest(frames=login_frames("biden2", 4), templates=[enrolled["obama"]]), timeout=TIMEOUT
    )
    assert not response.match and response.reason == pb.VERIFY_REASON_NO_MATCH
    assert response.matched_frames == 0


def test_verify_rejects_frames_of_two_people_matching_one_template_each(stub, enrolled, login_frames):
    frames = login_frames("obama2", 4) + login_frames("biden2", 4)
    response = stub.Verify(
        pb.VerifyRequest(frames=frames, templates=[enrolled["obama"], enrolled["biden"]]), timeout=TIMEOUT
    )
    assert not response.match and response.reason == pb.VERIFY_REASON_INCONSISTENT_IDENTITY
    assert response.max_intra_capture_distance > 0.55


def test_verify_with_a_group_in_view_has_not_enough_faces(stub, enrolled, photo_bytes, jpeg, rgb):
    group = jpeg(cv2.resize(rgb("selfie_many"), (640, 480)))
    response = stub.Verify(pb.VerifyRequest(frames=[group] * 3, templates=[enrolled["obama"]]), timeout=TIMEOUT)
    assert not response.match and response.reason == pb.VERIFY_REASON_NOT_ENOUGH_FACES
    statuses = [f.face.status for f in response.frames]
    # After two group frames the third cannot change the outcome and is left unexamined.
    assert statuses.count(pb.FACE_STATUS_MULTIPLE_FACES) >= 2
    assert set(statuses) <= {pb.FACE_STATUS_MULTIPLE_FACES, pb.FACE_STATUS_UNSPECIFIED}


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def _png_header_only(width, height):
    """A decompression bomb's opening: a valid PNG header announcing width x height, then a stub
    of compressed data; a server that decoded before checking the size would need 1.2 GB."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(65536)))


@functools.cache
def _big_png():
    return _png(2100, 2100)


def _bad_request(case, photo_bytes, template):
    good = photo_bytes["obama_knn"]
    good_template = [template]
    cases = {
        "encode: no images": ("Encode", pb.EncodeRequest(images=[]), "no images"),
        "verify: no frames": ("Verify", pb.VerifyRequest(frames=[], templates=good_template), "no images"),
        "empty image": ("Encode", pb.EncodeRequest(images=[b""]), "is empty"),
        "not an image": ("Encode", pb.EncodeRequest(images=[b"hello, this is text"]), "not a JPEG or PNG"),
        "corrupt JPEG": ("Encode", pb.EncodeRequest(images=[good[:3] + bytes(4000)]), "could not be decoded"),
        "truncated JPEG": ("Verify", pb.VerifyRequest(frames=[good[: len(good) // 3]], templates=good_template), ""),
        "too many bytes": ("Encode", pb.EncodeRequest(images=[good[:3] + bytes(3 * 1024 * 1024)]), "bytes"),
        "too many pixels": ("Encode", lambda: pb.EncodeRequest(images=[_big_png()]), "2100x2100 pixels"),
        "decompression bomb": ("Encode", lambda: pb.EncodeRequest(images=[_png_header_only(20000, 20000)]), "pixels"),
        "too many frames": ("Verify", pb.VerifyRequest(frames=[good] * 25, templates=good_template), "limit is 24"),
        "no templates": ("Verify", pb.VerifyRequest(frames=[good], templates=[]), "no templates"),
        "short embedding": (
            "Verify",
            pb.VerifyRequest(frames=[good], templates=[pb.Template(embedding=[0.1] * 127)]),
            "127 values",
        ),
        "NaN embedding": (
            "Verify",
            pb.VerifyRequest(frames=[good], templates=[pb.Template(embedding=[float("nan")] * 128)]),
            "NaN",
        ),
        "infinite embedding": (
            "Verify",
            pb.VerifyRequest(frames=[good], templates=[template, pb.Template(embedding=[float("inf")] * 128)]),
            "template 1",
        ),
        "too many templates": ("Verify", pb.VerifyRequest(frames=[good], templates=[template] * 65), "limit is 64"),
    }
    method, request, message = cases[case]
    return method, request() if callable(request) else request, message


BAD_CASES = [
    "encode: no images",
    "verify: no frames",
    "empty image",
    "not an image",
    "corrupt JPEG",
    "truncated JPEG",
    "too many bytes",
    "too many pixels",
    "decompression bomb",
    "too many frames",
    "no templates",
    "short embedding",
    "NaN embedding",
    "infinite embedding",
    "too many templates",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(stub, photo_bytes, enrolled, case):
    method, request, message = _bad_request(case, photo_bytes, enrolled["obama"])
    with pytest.raises(grpc.RpcError) as raised:
        getattr(stub, method)(request, timeout=TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert message in raised.value.details()
    follow_up = stub.Encode(pb.EncodeRequest(images=[photo_bytes["obama_knn"]]), timeout=TIMEOUT)
    assert follow_up.faces[0].status == pb.FACE_STATUS_OK


def test_expired_deadline_is_honoured_and_the_server_keeps_serving(stub, enrolled, login_frames):
    frames = login_frames("obama2", 8) * 2
    with pytest.raises(grpc.RpcError) as raised:
        # 30 ms: less than decoding 16 frames takes (with the TFLite descriptor a whole Verify can fit in 150 ms).
        stub.Verify(pb.VerifyRequest(frames=frames, templates=[enrolled["obama"]]), timeout=0.03)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    response = stub.Verify(pb.VerifyRequest(frames=frames[:4], templates=[enrolled["obama"]]), timeout=TIMEOUT)
    assert response.match


def test_concurrent_calls_are_answered_independently(stub, enrolled, login_frames):
    genuine = pb.VerifyRequest(frames=login_frames("obama2", 4), templates=[enrolled["obama"]])
    impostor = pb.VerifyRequest(frames=login_frames("biden2", 4), templates=[enrolled["obama"]])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda r: stub.Verify(r, timeout=TIMEOUT), [genuine, impostor, genuine, impostor]))
    assert [r.match for r in results] == [True, False, True, False]


# -- photo mode ------------------------------------------------------------------------------------------


def test_encode_photo_mode_uses_the_dominant_face_where_live_rules_refuse(
    stub, enrolled, photo_bytes, jpeg, obama_with_a_smaller_face_in_the_corner
):
    """One request per mode with the same images: a portrait with a background face, a group photo, a
    small face; the default (unset) mode is the live rules, as camera enrollment sends it."""
    images = [jpeg(obama_with_a_smaller_face_in_the_corner), photo_bytes["selfie_many"], photo_bytes["obama_240p"]]
    default = stub.Encode(pb.EncodeRequest(images=images), timeout=TIMEOUT)
    live = stub.Encode(pb.EncodeRequest(images=images, mode=pb.ENCODE_MODE_LIVE), timeout=TIMEOUT)
    photo = stub.Encode(pb.EncodeRequest(images=images, mode=pb.ENCODE_MODE_PHOTO), timeout=TIMEOUT)
    live_statuses = [pb.FACE_STATUS_MULTIPLE_FACES, pb.FACE_STATUS_MULTIPLE_FACES, pb.FACE_STATUS_FACE_TOO_SMALL]
    assert [f.status for f in default.faces] == [f.status for f in live.faces] == live_statuses
    assert [f.status for f in photo.faces] == [pb.FACE_STATUS_OK, pb.FACE_STATUS_MULTIPLE_FACES, pb.FACE_STATUS_OK]
    assert default.faces[0].faces_found == photo.faces[0].faces_found == 2
    assert photo.faces[1].faces_found >= 2 and len(photo.faces[1].embedding) == 0
    # The chosen face is the subject: both photo-mode templates verify as Obama's against his enrolled one.
    subject, small = (np.asarray(photo.faces[i].embedding) for i in (0, 2))
    obama, biden = (np.asarray(enrolled[name].embedding) for name in ("obama", "biden"))
    assert np.linalg.norm(subject - obama) <= 0.55 < np.linalg.norm(subject - biden)
    assert np.linalg.norm(small - obama) <= 0.55
    assert photo.same_person and photo.max_intra_capture_distance <= photo.max_intra_distance


def test_encode_refuses_an_unknown_mode_and_keeps_serving(stub, photo_bytes):
    with pytest.raises(grpc.RpcError) as raised:
        stub.Encode(pb.EncodeRequest(images=[photo_bytes["obama2"]], mode=7), timeout=TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown encode mode 7" in raised.value.details()
    assert stub.Encode(pb.EncodeRequest(images=[photo_bytes["obama2"]]), timeout=TIMEOUT).faces[0].status == (
        pb.FACE_STATUS_OK
    )


def test_verify_accepts_login_frames_of_a_face_filling_the_frame(stub, enrolled, rgb, engine, jpeg):
    """The user leaned in: 640x480 frames showing 60 % of the face box's height."""
    image = rgb("obama")
    box = engine.detect(image, DetectionSettings(max_side=800))[0][0]
    centre_x, centre_y = box.centre
    height = 0.6 * box.height
    width = height * 4 / 3
    frames = []
    for shift in (0, 10, 20, 30):
        left, top = round(centre_x + shift - width / 2), round(centre_y - height / 2)
        crop = image[top : top + round(height), left : left + round(width)]
        frames.append(jpeg(cv2.resize(crop, (640, 480), interpolation=cv2.INTER_AREA)))
    response = stub.Verify(pb.VerifyRequest(frames=frames, templates=[enrolled["obama"]]), timeout=TIMEOUT)
    assert response.match and response.reason == pb.VERIFY_REASON_MATCH
