"""Settings of the recognition service, read once from the environment (see docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass

from faceauth_common.grpc_server import ServerSettings
from faceauth_common.imaging import ImageLimits
from faceauth_common.settings import SettingsError, env_bool, env_choice, env_float, env_int, env_str
from recognition_service.choice import PhotoSettings
from recognition_service.engine import DESCRIPTORS, DetectionSettings
from recognition_service.quality import QualitySettings
from recognition_service.verify import MatchSettings


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    limits: ImageLimits
    max_templates: int
    detector: str  # "hog" (default) or "cnn"
    num_jitters: int
    # The face descriptor: "tflite" (default, the port of dlib's ResNet) or "dlib" (dlib's own, for
    # comparison and jitter); threads per TFLite interpreter (there is one interpreter per server thread).
    descriptor: str
    descriptor_threads: int
    # Login frames: small and fast. Enrollment images: any size, so a larger working size and a retry.
    verify_detection: DetectionSettings
    encode_detection: DetectionSettings
    quality: QualitySettings
    # Encode with ENCODE_MODE_PHOTO and the operator tools: the dominant face, the photo limits.
    photo: PhotoSettings
    match: MatchSettings
    log_level: str

    def __post_init__(self) -> None:
        if self.num_jitters > 1 and self.descriptor != "dlib":
            raise SettingsError(
                f"RECOGNITION_NUM_JITTERS={self.num_jitters} needs RECOGNITION_DESCRIPTOR=dlib "
                "(the TFLite descriptor does not jitter)"
            )
        match = self.match
        if 0 < match.max_embeddings < match.min_matched_frames:
            raise SettingsError(
                f"RECOGNITION_VERIFY_MAX_EMBEDDINGS ({match.max_embeddings}) is below "
                f"RECOGNITION_MIN_MATCHED_FRAMES ({match.min_matched_frames}): no capture could ever match"
            )

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            server=ServerSettings.from_env("RECOGNITION", "127.0.0.1:50052", "127.0.0.1:9102"),
            limits=ImageLimits(
                max_bytes=env_int(
                    "RECOGNITION_MAX_IMAGE_BYTES", 2 * 1024 * 1024, minimum=1024, maximum=8 * 1024 * 1024
                ),
                max_pixels=env_int("RECOGNITION_MAX_PIXELS", 4_000_000, minimum=10_000, maximum=40_000_000),
                max_frames=env_int("RECOGNITION_MAX_FRAMES", 24, minimum=1, maximum=32),
            ),
            max_templates=env_int("RECOGNITION_MAX_TEMPLATES", 64, minimum=1, maximum=1024),
            detector=env_choice("RECOGNITION_DETECTOR", "hog", ("hog", "cnn")),
            num_jitters=env_int("RECOGNITION_NUM_JITTERS", 1, minimum=1, maximum=100),
            descriptor=env_choice("RECOGNITION_DESCRIPTOR", "tflite", DESCRIPTORS),
            descriptor_threads=env_int("RECOGNITION_DESCRIPTOR_THREADS", 1, minimum=1, maximum=16),
            verify_detection=DetectionSettings(
                max_side=env_int("RECOGNITION_VERIFY_MAX_SIDE", 400, minimum=80, maximum=4096),
                upsample=env_int("RECOGNITION_VERIFY_UPSAMPLE", 0, minimum=0, maximum=3),
                retry_upsample=False,
                adjust_threshold=env_float("RECOGNITION_DETECT_THRESHOLD", 0.0, minimum=-2.0, maximum=2.0),
                pad_fraction=env_float("RECOGNITION_DETECT_PAD", 0.25, minimum=0.0, maximum=1.0),
            ),
            encode_detection=DetectionSettings(
                max_side=env_int("RECOGNITION_ENCODE_MAX_SIDE", 800, minimum=80, maximum=4096),
                upsample=env_int("RECOGNITION_ENCODE_UPSAMPLE", 0, minimum=0, maximum=3),
                retry_upsample=env_bool("RECOGNITION_ENCODE_RETRY_UPSAMPLE", True),
                adjust_threshold=env_float("RECOGNITION_DETECT_THRESHOLD", 0.0, minimum=-2.0, maximum=2.0),
                pad_fraction=env_float("RECOGNITION_DETECT_PAD", 0.25, minimum=0.0, maximum=1.0),
            ),
            quality=QualitySettings(
                min_face_px=env_int("RECOGNITION_MIN_FACE_PX", 80, minimum=20, maximum=2000),
                min_sharpness=env_float("RECOGNITION_MIN_SHARPNESS", 10.0, minimum=0.0),
                min_brightness=env_float("RECOGNITION_MIN_BRIGHTNESS", 40.0, minimum=0.0, maximum=255.0),
                multiple_face_ratio=env_float("RECOGNITION_MULTIPLE_FACE_RATIO", 0.4, minimum=0.0, maximum=1.0),
            ),
            photo=PhotoSettings(
                dominant_ratio=env_float("RECOGNITION_PHOTO_DOMINANT_RATIO", 0.5, minimum=0.0, maximum=1.0),
                out_of_focus_ratio=env_float("RECOGNITION_PHOTO_OUT_OF_FOCUS_RATIO", 0.1, minimum=0.0, maximum=1.0),
                max_upsample=env_int("RECOGNITION_PHOTO_MAX_UPSAMPLE", 2, minimum=0, maximum=3),
                min_face_px=env_int("RECOGNITION_PHOTO_MIN_FACE_PX", 40, minimum=20, maximum=2000),
                min_sharpness=env_float("RECOGNITION_PHOTO_MIN_SHARPNESS", 6.0, minimum=0.0),
                min_brightness=env_float("RECOGNITION_PHOTO_MIN_BRIGHTNESS", 20.0, minimum=0.0, maximum=255.0),
            ),
            match=MatchSettings(
                threshold=env_float("RECOGNITION_MATCH_THRESHOLD", 0.55, minimum=0.05, maximum=2.0),
                min_matched_frames=env_int("RECOGNITION_MIN_MATCHED_FRAMES", 2, minimum=1, maximum=32),
                max_intra_distance=env_float("RECOGNITION_MAX_INTRA_DISTANCE", 0.55, minimum=0.05, maximum=2.0),
                max_embeddings=env_int("RECOGNITION_VERIFY_MAX_EMBEDDINGS", 4, minimum=0, maximum=32),
                early_stop=env_bool("RECOGNITION_VERIFY_EARLY_STOP", True),
                observe_all=env_bool("RECOGNITION_VERIFY_OBSERVE_ALL", False),
            ),
            log_level=env_str("LOG_LEVEL", "INFO"),
        )
