"""Wiring: load the liveness engine and register the servicer."""

from __future__ import annotations

import grpc
from faceauth.liveness.v1 import liveness_pb2_grpc
from faceauth_common.grpc_server import EngineSlot

from liveness_service.config import Settings


def load_engine(settings: Settings):  # type: ignore[no-untyped-def]
    # Foundation placeholder for the engine: loads TensorFlow and dlib's landmark model.
    import dlib
    import face_recognition_models
    import tensorflow as tf

    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    tf.reduce_sum(tf.ones((2, 2)))
    return predictor


def add_servicers(server: grpc.Server, slot: EngineSlot, settings: Settings) -> None:
    liveness_pb2_grpc.add_LivenessServiceServicer_to_server(liveness_pb2_grpc.LivenessServiceServicer(), server)
