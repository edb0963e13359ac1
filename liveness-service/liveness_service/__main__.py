"""python -m liveness_service: settings -> logging -> load model -> serve."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from faceauth.liveness.v1 import liveness_pb2
from faceauth_common.grpc_server import run_service
from faceauth_common.logs import configure_logging
from faceauth_common.metrics import prepare_multiprocess_from_env
from liveness_service.config import Settings
from liveness_service.server import add_servicers, load_engine

SERVICE_NAME = liveness_pb2.DESCRIPTOR.services_by_name["LivenessService"].full_name


def main() -> int:
    # First: prometheus-client picks its storage when imported (shared files when there are several workers).
    prepare_multiprocess_from_env("LIVENESS")
    settings = Settings.from_env()
    configure_logging("liveness-service", settings.log_level)
    return run_service(
        SERVICE_NAME,
        settings.server,
        lambda: load_engine(settings),
        lambda server, slot: add_servicers(server, slot, settings),
    )


if __name__ == "__main__":
    sys.exit(main())
