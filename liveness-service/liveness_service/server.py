"""Wiring: load the liveness engine and register the servicer."""

from __future__ import annotations

import grpc

from faceauth.liveness.v1 import liveness_pb2_grpc
from faceauth_common.grpc_server import EngineSlot
from liveness_service.config import Settings
from liveness_service.servicer import LivenessServicer
from liveness_service.verdict import LivenessEngine


def load_engine(settings: Settings) -> LivenessEngine:
    """Load dlib's detector and landmark model and the passive TFLite model, and warm them up."""
    return LivenessEngine.load(settings)


def add_servicers(server: grpc.Server, slot: EngineSlot[LivenessEngine], settings: Settings) -> None:
    liveness_pb2_grpc.add_LivenessServiceServicer_to_server(LivenessServicer(slot, settings), server)
