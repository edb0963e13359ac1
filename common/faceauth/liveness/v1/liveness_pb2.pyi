from faceauth.common.v1 import geometry_pb2 as _geometry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_BLINK: _ClassVar[Action]
    ACTION_TURN_LEFT: _ClassVar[Action]
    ACTION_TURN_RIGHT: _ClassVar[Action]

class LivenessReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIVENESS_REASON_UNSPECIFIED: _ClassVar[LivenessReason]
    LIVENESS_REASON_LIVE: _ClassVar[LivenessReason]
    LIVENESS_REASON_SPOOF_SUSPECTED: _ClassVar[LivenessReason]
    LIVENESS_REASON_CHALLENGE_NOT_MET: _ClassVar[LivenessReason]
    LIVENESS_REASON_NO_FACE: _ClassVar[LivenessReason]
    LIVENESS_REASON_MULTIPLE_FACES: _ClassVar[LivenessReason]
    LIVENESS_REASON_TRACK_DISCONTINUOUS: _ClassVar[LivenessReason]
    LIVENESS_REASON_STATIC_CAPTURE: _ClassVar[LivenessReason]
    LIVENESS_REASON_TOO_FEW_FRAMES: _ClassVar[LivenessReason]
    LIVENESS_REASON_CAPTURE_TOO_SHORT: _ClassVar[LivenessReason]
    LIVENESS_REASON_FLASH_NOT_REFLECTED: _ClassVar[LivenessReason]
    LIVENESS_REASON_PLANAR_MOTION: _ClassVar[LivenessReason]
    LIVENESS_REASON_SYNTHETIC_MOTION: _ClassVar[LivenessReason]
    LIVENESS_REASON_FRAME_TIMING: _ClassVar[LivenessReason]
ACTION_UNSPECIFIED: Action
ACTION_BLINK: Action
ACTION_TURN_LEFT: Action
ACTION_TURN_RIGHT: Action
LIVENESS_REASON_UNSPECIFIED: LivenessReason
LIVENESS_REASON_LIVE: LivenessReason
LIVENESS_REASON_SPOOF_SUSPECTED: LivenessReason
LIVENESS_REASON_CHALLENGE_NOT_MET: LivenessReason
LIVENESS_REASON_NO_FACE: LivenessReason
LIVENESS_REASON_MULTIPLE_FACES: LivenessReason
LIVENESS_REASON_TRACK_DISCONTINUOUS: LivenessReason
LIVENESS_REASON_STATIC_CAPTURE: LivenessReason
LIVENESS_REASON_TOO_FEW_FRAMES: LivenessReason
LIVENESS_REASON_CAPTURE_TOO_SHORT: LivenessReason
LIVENESS_REASON_FLASH_NOT_REFLECTED: LivenessReason
LIVENESS_REASON_PLANAR_MOTION: LivenessReason
LIVENESS_REASON_SYNTHETIC_MOTION: LivenessReason
LIVENESS_REASON_FRAME_TIMING: LivenessReason

class CheckRequest(_message.Message):
    __slots__ = ("frames", "challenge", "frame_times_ms", "flash", "flash_start_ms")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    FRAME_TIMES_MS_FIELD_NUMBER: _ClassVar[int]
    FLASH_FIELD_NUMBER: _ClassVar[int]
    FLASH_START_MS_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedScalarFieldContainer[bytes]
    challenge: _containers.RepeatedScalarFieldContainer[Action]
    frame_times_ms: _containers.RepeatedScalarFieldContainer[int]
    flash: _containers.RepeatedCompositeFieldContainer[FlashStep]
    flash_start_ms: int
    def __init__(self, frames: _Optional[_Iterable[bytes]] = ..., challenge: _Optional[_Iterable[_Union[Action, str]]] = ..., frame_times_ms: _Optional[_Iterable[int]] = ..., flash: _Optional[_Iterable[_Union[FlashStep, _Mapping]]] = ..., flash_start_ms: _Optional[int] = ...) -> None: ...

class FlashStep(_message.Message):
    __slots__ = ("rgb", "duration_ms")
    RGB_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    rgb: int
    duration_ms: int
    def __init__(self, rgb: _Optional[int] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class FrameDiagnostics(_message.Message):
    __slots__ = ("face_count", "box", "live_score", "eye_aspect_ratio", "yaw_degrees", "difference_to_previous", "colour_change_to_previous", "flash_expected_rgb", "skin_rgb", "background_rgb")
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    LIVE_SCORE_FIELD_NUMBER: _ClassVar[int]
    EYE_ASPECT_RATIO_FIELD_NUMBER: _ClassVar[int]
    YAW_DEGREES_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_TO_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    COLOUR_CHANGE_TO_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    FLASH_EXPECTED_RGB_FIELD_NUMBER: _ClassVar[int]
    SKIN_RGB_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_RGB_FIELD_NUMBER: _ClassVar[int]
    face_count: int
    box: _geometry_pb2.BoundingBox
    live_score: float
    eye_aspect_ratio: float
    yaw_degrees: float
    difference_to_previous: float
    colour_change_to_previous: float
    flash_expected_rgb: int
    skin_rgb: _containers.RepeatedScalarFieldContainer[float]
    background_rgb: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, face_count: _Optional[int] = ..., box: _Optional[_Union[_geometry_pb2.BoundingBox, _Mapping]] = ..., live_score: _Optional[float] = ..., eye_aspect_ratio: _Optional[float] = ..., yaw_degrees: _Optional[float] = ..., difference_to_previous: _Optional[float] = ..., colour_change_to_previous: _Optional[float] = ..., flash_expected_rgb: _Optional[int] = ..., skin_rgb: _Optional[_Iterable[float]] = ..., background_rgb: _Optional[_Iterable[float]] = ...) -> None: ...

class FlashResult(_message.Message):
    __slots__ = ("reflected", "score", "threshold", "face_gain", "background_ratio", "lag_ms", "edge_ratio", "covered_steps", "detail")
    REFLECTED_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FACE_GAIN_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_RATIO_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_FIELD_NUMBER: _ClassVar[int]
    EDGE_RATIO_FIELD_NUMBER: _ClassVar[int]
    COVERED_STEPS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    reflected: bool
    score: float
    threshold: float
    face_gain: float
    background_ratio: float
    lag_ms: int
    edge_ratio: float
    covered_steps: int
    detail: str
    def __init__(self, reflected: _Optional[bool] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., face_gain: _Optional[float] = ..., background_ratio: _Optional[float] = ..., lag_ms: _Optional[int] = ..., edge_ratio: _Optional[float] = ..., covered_steps: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class ActionResult(_message.Message):
    __slots__ = ("action", "performed", "frame_index")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PERFORMED_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    action: Action
    performed: bool
    frame_index: int
    def __init__(self, action: _Optional[_Union[Action, str]] = ..., performed: _Optional[bool] = ..., frame_index: _Optional[int] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("live", "reason", "failed_checks", "live_score", "live_threshold", "frames", "actions", "model_version", "flash", "planarity_residual")
    LIVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_CHECKS_FIELD_NUMBER: _ClassVar[int]
    LIVE_SCORE_FIELD_NUMBER: _ClassVar[int]
    LIVE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FLASH_FIELD_NUMBER: _ClassVar[int]
    PLANARITY_RESIDUAL_FIELD_NUMBER: _ClassVar[int]
    live: bool
    reason: LivenessReason
    failed_checks: _containers.RepeatedScalarFieldContainer[LivenessReason]
    live_score: float
    live_threshold: float
    frames: _containers.RepeatedCompositeFieldContainer[FrameDiagnostics]
    actions: _containers.RepeatedCompositeFieldContainer[ActionResult]
    model_version: str
    flash: FlashResult
    planarity_residual: float
    def __init__(self, live: _Optional[bool] = ..., reason: _Optional[_Union[LivenessReason, str]] = ..., failed_checks: _Optional[_Iterable[_Union[LivenessReason, str]]] = ..., live_score: _Optional[float] = ..., live_threshold: _Optional[float] = ..., frames: _Optional[_Iterable[_Union[FrameDiagnostics, _Mapping]]] = ..., actions: _Optional[_Iterable[_Union[ActionResult, _Mapping]]] = ..., model_version: _Optional[str] = ..., flash: _Optional[_Union[FlashResult, _Mapping]] = ..., planarity_residual: _Optional[float] = ...) -> None: ...
