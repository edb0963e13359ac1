"""Wiring: load the face engine and register the servicer."""

from __future__ import annotations

import grpc

from faceauth.recognition.v1 import recognition_pb2_grpc
from faceauth_common.grpc_server import EngineSlot
from recognition_service.config import Settings
from recognition_service.engine import FaceEngine
from recognition_service.servicer import RecognitionServicer


def load_engine(settings: Settings) -> FaceEngine:
    """Load the models once and warm them up (detector, landmarks and descriptor)."""
    return FaceEngine.load(
        detector=settings.detector,
        num_jitters=settings.num_jitters,
        threads=settings.server.threads,
        descriptor=settings.descriptor,
        descriptor_threads=settings.descriptor_threads,
    )


def add_servicers(server: grpc.Server, slot: EngineSlot[FaceEngine], settings: Settings) -> None:
    recognition_pb2_grpc.add_RecognitionServiceServicer_to_server(RecognitionServicer(slot, settings), server)
