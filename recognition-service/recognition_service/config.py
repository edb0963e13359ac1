"""Settings of the recognition service, read once from the environment (see docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass

from faceauth_common.grpc_server import ServerSettings
from faceauth_common.imaging import ImageLimits
from faceauth_common.settings import env_int, env_str


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    limits: ImageLimits
    log_level: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            server=ServerSettings.from_env("RECOGNITION", "127.0.0.1:50052"),
            limits=ImageLimits(
                max_bytes=env_int("RECOGNITION_MAX_IMAGE_BYTES", 2 * 1024 * 1024, minimum=1024, maximum=8 * 1024 * 1024),
                max_pixels=env_int("RECOGNITION_MAX_PIXELS", 4_000_000, minimum=10_000, maximum=40_000_000),
                max_frames=env_int("RECOGNITION_MAX_FRAMES", 16, minimum=1, maximum=32),
            ),
            log_level=env_str("LOG_LEVEL", "INFO"),
        )
