from faceauth.common.v1 import geometry_pb2 as _geometry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACE_STATUS_UNSPECIFIED: _ClassVar[FaceStatus]
    FACE_STATUS_OK: _ClassVar[FaceStatus]
    FACE_STATUS_NO_FACE: _ClassVar[FaceStatus]
    FACE_STATUS_MULTIPLE_FACES: _ClassVar[FaceStatus]
    FACE_STATUS_FACE_TOO_SMALL: _ClassVar[FaceStatus]
    FACE_STATUS_TOO_BLURRY: _ClassVar[FaceStatus]
    FACE_STATUS_TOO_DARK: _ClassVar[FaceStatus]
    FACE_STATUS_BAD_IMAGE: _ClassVar[FaceStatus]

class EncodeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODE_MODE_UNSPECIFIED: _ClassVar[EncodeMode]
    ENCODE_MODE_LIVE: _ClassVar[EncodeMode]
    ENCODE_MODE_PHOTO: _ClassVar[EncodeMode]

class VerifyReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFY_REASON_UNSPECIFIED: _ClassVar[VerifyReason]
    VERIFY_REASON_MATCH: _ClassVar[VerifyReason]
    VERIFY_REASON_NO_MATCH: _ClassVar[VerifyReason]
    VERIFY_REASON_NOT_ENOUGH_FACES: _ClassVar[VerifyReason]
    VERIFY_REASON_INCONSISTENT_IDENTITY: _ClassVar[VerifyReason]
FACE_STATUS_UNSPECIFIED: FaceStatus
FACE_STATUS_OK: FaceStatus
FACE_STATUS_NO_FACE: FaceStatus
FACE_STATUS_MULTIPLE_FACES: FaceStatus
FACE_STATUS_FACE_TOO_SMALL: FaceStatus
FACE_STATUS_TOO_BLURRY: FaceStatus
FACE_STATUS_TOO_DARK: FaceStatus
FACE_STATUS_BAD_IMAGE: FaceStatus
ENCODE_MODE_UNSPECIFIED: EncodeMode
ENCODE_MODE_LIVE: EncodeMode
ENCODE_MODE_PHOTO: EncodeMode
VERIFY_REASON_UNSPECIFIED: VerifyReason
VERIFY_REASON_MATCH: VerifyReason
VERIFY_REASON_NO_MATCH: VerifyReason
VERIFY_REASON_NOT_ENOUGH_FACES: VerifyReason
VERIFY_REASON_INCONSISTENT_IDENTITY: VerifyReason

class FaceObservation(_message.Message):
    __slots__ = ("status", "box", "detection_score", "quality", "sharpness", "brightness", "embedding", "faces_found")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    BRIGHTNESS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    FACES_FOUND_FIELD_NUMBER: _ClassVar[int]
    status: FaceStatus
    box: _geometry_pb2.BoundingBox
    detection_score: float
    quality: float
    sharpness: float
    brightness: float
    embedding: _containers.RepeatedScalarFieldContainer[float]
    faces_found: int
    def __init__(self, status: _Optional[_Union[FaceStatus, str]] = ..., box: _Optional[_Union[_geometry_pb2.BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., quality: _Optional[float] = ..., sharpness: _Optional[float] = ..., brightness: _Optional[float] = ..., embedding: _Optional[_Iterable[float]] = ..., faces_found: _Optional[int] = ...) -> None: ...

class EncodeRequest(_message.Message):
    __slots__ = ("images", "mode")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    mode: EncodeMode
    def __init__(self, images: _Optional[_Iterable[bytes]] = ..., mode: _Optional[_Union[EncodeMode, str]] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("faces", "model_version", "max_intra_capture_distance", "same_person", "max_intra_distance")
    FACES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_INTRA_CAPTURE_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SAME_PERSON_FIELD_NUMBER: _ClassVar[int]
    MAX_INTRA_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[FaceObservation]
    model_version: str
    max_intra_capture_distance: float
    same_person: bool
    max_intra_distance: float
    def __init__(self, faces: _Optional[_Iterable[_Union[FaceObservation, _Mapping]]] = ..., model_version: _Optional[str] = ..., max_intra_capture_distance: _Optional[float] = ..., same_person: _Optional[bool] = ..., max_intra_distance: _Optional[float] = ...) -> None: ...

class Template(_message.Message):
    __slots__ = ("embedding",)
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("frames", "templates")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedScalarFieldContainer[bytes]
    templates: _containers.RepeatedCompositeFieldContainer[Template]
    def __init__(self, frames: _Optional[_Iterable[bytes]] = ..., templates: _Optional[_Iterable[_Union[Template, _Mapping]]] = ...) -> None: ...

class FrameMatch(_message.Message):
    __slots__ = ("face", "distance", "matched", "compared")
    FACE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FIELD_NUMBER: _ClassVar[int]
    face: FaceObservation
    distance: float
    matched: bool
    compared: bool
    def __init__(self, face: _Optional[_Union[FaceObservation, _Mapping]] = ..., distance: _Optional[float] = ..., matched: _Optional[bool] = ..., compared: _Optional[bool] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("match", "reason", "frames", "matched_frames", "threshold", "min_matched_frames", "max_intra_capture_distance", "model_version", "compared_frames")
    MATCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_MATCHED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_INTRA_CAPTURE_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    match: bool
    reason: VerifyReason
    frames: _containers.RepeatedCompositeFieldContainer[FrameMatch]
    matched_frames: int
    threshold: float
    min_matched_frames: int
    max_intra_capture_distance: float
    model_version: str
    compared_frames: int
    def __init__(self, match: _Optional[bool] = ..., reason: _Optional[_Union[VerifyReason, str]] = ..., frames: _Optional[_Iterable[_Union[FrameMatch, _Mapping]]] = ..., matched_frames: _Optional[int] = ..., threshold: _Optional[float] = ..., min_matched_frames: _Optional[int] = ..., max_intra_capture_distance: _Optional[float] = ..., model_version: _Optional[str] = ..., compared_frames: _Optional[int] = ...) -> None: ...
