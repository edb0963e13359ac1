"""Wiring: load the face engine and register the servicer."""

from __future__ import annotations

import grpc
import numpy as np
from faceauth.recognition.v1 import recognition_pb2_grpc
from faceauth_common.grpc_server import EngineSlot

from recognition_service.config import Settings


def load_engine(settings: Settings):  # type: ignore[no-untyped-def]
    # Foundation placeholder for the engine: loads and warms the real dlib models.
    import face_recognition

    face_recognition.face_locations(np.zeros((64, 64, 3), dtype=np.uint8))
    return face_recognition


def add_servicers(server: grpc.Server, slot: EngineSlot, settings: Settings) -> None:
    recognition_pb2_grpc.add_RecognitionServiceServicer_to_server(recognition_pb2_grpc.RecognitionServiceServicer(), server)
