"""The TFLite port of dlib's face descriptor: parity with dlib on the repository's faces, batching, settings."""

from __future__ import annotations

import numpy as np
import pytest

from faceauth_common.settings import SettingsError
from recognition_service.config import Settings
from recognition_service.descriptor import DEFAULT_MODEL_PATH, DlibDescriptor, TFLiteDescriptor
from recognition_service.engine import (
    MODEL_VERSION,
    DetectionSettings,
    FaceEngine,
    FaceStatus,
    model_paths,
    model_version,
)
from recognition_service.quality import QualitySettings
from recognition_service.tools.descriptor_chips import chips_from_images, repository_test_images
from recognition_service.tools.dlib_dat import DatFormatError, read_dlib_resnet
from recognition_service.verify import MatchSettings, verify

# Measured 5.5e-7 per component and 9.8e-7 per pair distance over 246 faces (bench/results/descriptor_parity.md);
# a wrong layer, padding or weight layout is off by 1e-2 or more.
COMPONENT_TOLERANCE = 1e-5
MATCH = MatchSettings()
ENROLL = DetectionSettings(max_side=800, upsample=0, retry_upsample=True)
LOGIN = DetectionSettings(max_side=400, upsample=0)


@pytest.fixture(scope="module")
def chips():
    chips, labels = chips_from_images(repository_test_images())
    assert len(chips) >= 30, labels  # every face in tests/data's photos and 4 frames of each clip
    return chips


@pytest.fixture(scope="module")
def port():
    return TFLiteDescriptor(DEFAULT_MODEL_PATH)


@pytest.fixture(scope="module")
def reference(chips):
    return DlibDescriptor(model_paths()["encoder"]).compute(chips)


def test_port_matches_dlib_per_component_per_pair_and_per_decision(chips, port, reference):
    ported = port.compute(chips)
    assert ported.shape == reference.shape == (len(chips), 128)
    assert np.max(np.abs(ported - reference)) <= COMPONENT_TOLERANCE

    def pairs(embeddings):
        upper = np.triu_indices(len(embeddings), k=1)
        return np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)[upper]

    dlib_pairs, port_pairs = pairs(reference), pairs(ported)
    assert np.max(np.abs(port_pairs - dlib_pairs)) <= 2 * COMPONENT_TOLERANCE
    # Real matches and non-matches on both sides of the threshold, decided the same by both.
    assert np.any(dlib_pairs <= MATCH.threshold) and np.any(dlib_pairs > MATCH.threshold)
    assert np.array_equal(dlib_pairs <= MATCH.threshold, port_pairs <= MATCH.threshold)


def test_a_batch_gives_what_each_chip_gives_alone(chips, port):
    batch = port.compute(chips[:5])
    alone = np.concatenate([port.compute(chips[i : i + 1]) for i in range(5)])
    assert np.max(np.abs(batch - alone)) <= 1e-6
    assert port.compute(chips[:0]).shape == (0, 128)
    with pytest.raises(ValueError, match="chips"):
        port.compute(chips[:, :100])


def test_interpreters_are_pooled_and_each_one_is_warmed_up(chips, port):
    pool = TFLiteDescriptor(DEFAULT_MODEL_PATH, num_threads=1, instances=3)
    outputs = pool.warm_up(chips[0])
    assert len(outputs) == 6 and [len(o) for o in outputs] == [1, 2] * 3
    assert all(np.max(np.abs(o[0] - outputs[0][0])) <= 1e-6 for o in outputs)


def test_an_engine_has_an_interpreter_per_server_thread_but_not_more_than_cores(monkeypatch):
    import recognition_service.engine as engine_module

    monkeypatch.setattr(engine_module, "available_cores", lambda: 2)
    assert FaceEngine(threads=8).descriptor_instances == 2
    assert FaceEngine(threads=1).descriptor_instances == 1
    assert FaceEngine(threads=8, descriptor="dlib").descriptor_instances == 1


def test_engines_with_either_descriptor_give_the_same_embedding_and_say_which(rgb):
    tflite = FaceEngine.load(descriptor="tflite")
    dlib_engine = FaceEngine.load(descriptor="dlib")
    assert tflite.model_version == f"{MODEL_VERSION}+tflite" == model_version("tflite")
    assert dlib_engine.model_version == MODEL_VERSION  # dlib's own keeps the version of existing templates
    image = rgb("obama")
    one = tflite.encode(image, ENROLL, QualitySettings())
    other = dlib_engine.encode(image, ENROLL, QualitySettings())
    assert one.status is other.status is FaceStatus.OK
    assert np.max(np.abs(one.embedding - other.embedding)) <= COMPONENT_TOLERANCE


def test_verify_embeds_the_chosen_frames_of_a_wave_in_one_descriptor_call(engine, webcam_frame, monkeypatch):
    template = engine.encode(webcam_frame("obama"), ENROLL, QualitySettings()).embedding
    frames = [webcam_frame("obama2", shift) for shift in (0, 4, 8, 12)]
    calls = []
    embed_many = engine.embed_many

    def spy(images, observations):
        calls.append(len(images))
        return embed_many(images, observations)

    monkeypatch.setattr(engine, "embed_many", spy)
    result = verify(engine, frames, np.stack([template]), LOGIN, QualitySettings(), MATCH)
    assert result.match and result.compared_frames == MATCH.min_matched_frames
    assert calls == [MATCH.min_matched_frames]  # a genuine capture: one call with both chips
    calls.clear()
    everything = MatchSettings(max_embeddings=0, early_stop=False)
    result = verify(engine, frames, np.stack([template]), LOGIN, QualitySettings(), everything)
    assert result.compared_frames == 4 and calls == [4]


def test_settings_choose_the_descriptor_and_refuse_jitter_without_dlib(monkeypatch):
    monkeypatch.delenv("RECOGNITION_DESCRIPTOR", raising=False)
    assert Settings.from_env().descriptor == "tflite"
    monkeypatch.setenv("RECOGNITION_DESCRIPTOR", "dlib")
    monkeypatch.setenv("RECOGNITION_NUM_JITTERS", "3")
    assert Settings.from_env().num_jitters == 3
    monkeypatch.setenv("RECOGNITION_DESCRIPTOR", "tflite")
    with pytest.raises(SettingsError, match="RECOGNITION_NUM_JITTERS"):
        Settings.from_env()
    monkeypatch.setenv("RECOGNITION_DESCRIPTOR", "onnx")
    with pytest.raises(SettingsError):
        Settings.from_env()


def test_the_weights_reader_refuses_a_damaged_file(tmp_path):
    original = model_paths()["encoder"].read_bytes()
    network = read_dlib_resnet(model_paths()["encoder"])
    assert network.input_size == 150 and len(network.layers) == 108
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(original[: len(original) // 2])
    with pytest.raises(DatFormatError, match=r"ends early|expected"):
        read_dlib_resnet(truncated)
    renamed = tmp_path / "renamed.dat"
    renamed.write_bytes(original.replace(b"affine_", b"affinx_", 1))
    with pytest.raises(DatFormatError, match="unknown layer 'affinx_'"):
        read_dlib_resnet(renamed)
    other = tmp_path / "other.dat"
    other.write_bytes(model_paths()["shape_predictor"].read_bytes())
    with pytest.raises(DatFormatError):
        read_dlib_resnet(other)
