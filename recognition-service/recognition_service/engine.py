"""The face engine: the loaded models, detection, the chosen face's landmarks and its embedding.

Numpy in, numpy out; no gRPC here. Quality judgement is in ``quality``, the 1:1 decision in ``verify``.
Models are dlib's (files from the ``face_recognition_models`` package, the same ones ``face_recognition``
uses): the HOG frontal-face detector (or the MMOD CNN detector as an option), the 5-point landmark predictor
and the ResNet face encoder (128-d), the encoder by default through its TFLite port (``descriptor``).
Embeddings are computed as ``face_recognition.face_encodings(model="small")`` does them (dlib's 150x150
chip of the 5 landmarks, then the ResNet), so templates made with ``face_recognition`` stay comparable.
"""

from __future__ import annotations

import enum
import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import dlib
import numpy as np

from faceauth_common.boxes import Box, downscale_factor
from faceauth_common.metrics import observe_stage
from faceauth_common.threadsafe import InstancePool
from recognition_service.choice import PhotoSettings, choose_live, choose_photo
from recognition_service.descriptor import (
    CHIP_PADDING,
    CHIP_SIZE,
    DEFAULT_MODEL_PATH,
    EMBEDDING_SIZE,
    Descriptor,
    DlibDescriptor,
    TFLiteDescriptor,
)
from recognition_service.quality import QualitySettings, quality_score, sharpness_brightness
from recognition_service.warmup import synthetic_face

# Embeddings are only comparable within one version: encoder weights + alignment (5-point chip).
MODEL_VERSION = "dlib-resnet-v1/5pt/fr-models-0.3.0"
# The descriptor's runtime (RECOGNITION_DESCRIPTOR). It is reported after a "+" (build metadata, as in
# semantic versioning): the TFLite port computes dlib's embedding space (bench/results/descriptor_parity.md:
# no match decision changes), so templates of either are valid for the other; the part before "+" is what
# must be equal (auth-web's decision compares that).
DESCRIPTORS = ("tflite", "dlib")


def model_version(descriptor: str) -> str:
    """``MODEL_VERSION`` for dlib's own descriptor, ``MODEL_VERSION+tflite`` for the port."""
    if descriptor not in DESCRIPTORS:
        raise ValueError(f"unknown descriptor {descriptor!r}")
    return MODEL_VERSION if descriptor == "dlib" else f"{MODEL_VERSION}+{descriptor}"


DeadlineCheck = Callable[[], None]


class DeadlineExceeded(Exception):
    """Raised by a deadline check between frames; the caller abandons the work."""


class FaceStatus(enum.Enum):
    # Verify only: the frame was not looked at because the decision did not need it.
    NOT_EXAMINED = "UNSPECIFIED"
    OK = "OK"
    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    FACE_TOO_SMALL = "FACE_TOO_SMALL"
    TOO_BLURRY = "TOO_BLURRY"
    TOO_DARK = "TOO_DARK"
    BAD_IMAGE = "BAD_IMAGE"


@dataclass(frozen=True)
class DetectionSettings:
    # Frames are downscaled so their longer side is at most this before detection (boxes are mapped
    # back). HOG's smallest face is ~80 px at the working scale, i.e. 80 / scale px in the original.
    max_side: int = 400
    upsample: int = 0
    # When nothing is found, try once more with one more upsampling step (enrollment images only).
    retry_upsample: bool = False
    adjust_threshold: float = 0.0
    # When no face is found, or the largest touches the image border, detect again on the working image
    # padded with black by this fraction of its longer side on every side (0: never). HOG needs some
    # context around a face: one that fills the frame or is cut by the border is otherwise missed or boxed
    # too small. Black is what dlib's landmark predictor and chip extraction read outside the image, so the
    # face's unclipped box is used on the original image without padding it.
    pad_fraction: float = 0.25


@dataclass(frozen=True)
class Face:
    """One detection: ``box`` clipped to the image (reported, cropped for quality), ``rect`` as found
    (may extend past the border; the landmark predictor is given this one)."""

    box: Box
    rect: dlib.rectangle
    score: float


@dataclass
class Observation:
    """What was found in one image. ``embedding`` is set only after ``FaceEngine.embed``."""

    status: FaceStatus
    box: Box | None = None
    detection_score: float = 0.0
    quality: float = 0.0
    sharpness: float = 0.0
    brightness: float = 0.0
    embedding: np.ndarray | None = None
    faces_found: int = 0
    # Photo mode: faces left out because they were clearly less prominent or out of focus.
    faces_ignored: int = 0
    landmarks: dlib.full_object_detection | None = field(default=None, repr=False)


def _dlib_rect(box: Box) -> dlib.rectangle:
    return dlib.rectangle(box.left, box.top, box.right, box.bottom)


def _touches_border(box: Box, width: int, height: int) -> bool:
    return box.left <= 0 or box.top <= 0 or box.right >= width or box.bottom >= height


def model_paths() -> dict[str, Path]:
    """Model files shipped by the ``face_recognition_models`` package."""
    with warnings.catch_warnings():
        # face_recognition_models uses pkg_resources, which warns on import.
        warnings.simplefilter("ignore")
        import face_recognition_models as models
    return {
        "shape_predictor": Path(models.pose_predictor_five_point_model_location()),
        "encoder": Path(models.face_recognition_model_location()),
        "cnn_detector": Path(models.cnn_face_detector_model_location()),
    }


class FaceEngine:
    """Loaded models. Build once per process with ``FaceEngine.load`` (it also warms up)."""

    def __init__(
        self,
        detector: str = "hog",
        num_jitters: int = 1,
        threads: int = 1,
        descriptor: str = "tflite",
        descriptor_threads: int = 1,
    ) -> None:
        paths = model_paths()
        self.detector_kind = detector
        self.descriptor_kind = descriptor
        self.model_version = model_version(descriptor)
        # No dlib object may be used by two threads at once (gRPC serves calls on ``threads`` threads;
        # a shared HOG detector segfaults). HOG releases the GIL, so there is one detector per server
        # thread (copies of one, made at load) and threads detect in parallel; the shape
        # predictor and dlib's DNNs hold the GIL, so one instance each behind a lock costs no
        # parallelism (bench/results/gil.md). The TFLite descriptor releases the GIL in ``invoke``: one
        # interpreter per server thread, each with ``descriptor_threads`` threads, but no more interpreters
        # than the process has cores (each holds ~48 MB of packed weights; more invokes than cores at once
        # only queue).
        if detector == "cnn":
            self._cnn_detector = dlib.cnn_face_detection_model_v1(str(paths["cnn_detector"]))
        else:
            self._hog_detectors = InstancePool.of_copies(dlib.get_frontal_face_detector(), threads)
        self._shape_predictor = dlib.shape_predictor(str(paths["shape_predictor"]))
        instances = max(1, min(threads, available_cores()))
        self._descriptor = load_descriptor(descriptor, paths["encoder"], num_jitters, descriptor_threads, instances)
        self.num_jitters = num_jitters
        self._cnn_lock = threading.Lock()
        self._shape_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        detector: str = "hog",
        num_jitters: int = 1,
        threads: int = 1,
        descriptor: str = "tflite",
        descriptor_threads: int = 1,
    ) -> FaceEngine:
        engine = cls(detector, num_jitters, threads, descriptor, descriptor_threads)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Run every model once so the first request does not pay for lazy initialisation.

        The input is a synthetic face-like image (skin-toned oval, dark eyes and mouth): detection
        runs over it, and landmarks + the encoder run on its central box whether or not HOG accepts
        it, so the encoder is always exercised (every TFLite interpreter, at batch sizes 1 and 2).
        Its output must be 128 finite numbers per chip.
        """
        image = synthetic_face(240)
        self.detect(image, DetectionSettings(max_side=240, upsample=0))
        box = Box(60, 50, 180, 190)
        landmarks = self._landmarks(image, box)
        chip = self.chip(image, landmarks)
        for embeddings in self._descriptor.warm_up(chip):
            if embeddings.shape[1:] != (EMBEDDING_SIZE,) or not np.all(np.isfinite(embeddings)):
                raise RuntimeError("the face encoder produced an invalid embedding during warm-up")

    # -- detection ---------------------------------------------------------------------------------

    def detect(self, image: np.ndarray, settings: DetectionSettings) -> list[tuple[Box, float]]:
        """Faces as (box in original pixels, detector score), largest first."""
        return [(face.box, face.score) for face in self.find_faces(image, settings)]

    def find_faces(self, image: np.ndarray, settings: DetectionSettings, max_upsample: int = 0) -> list[Face]:
        """Faces in original pixels, largest first. Tries, until one finds a face: the working image at
        ``settings.upsample``; the padded working image (``pad_fraction``; also when the largest face
        touches the border, keeping whichever finds the larger face); then upsampled by one more step
        with ``retry_upsample`` and up to ``max_upsample`` steps (photo mode)."""
        height, width = image.shape[:2]
        scale = downscale_factor(width, height, settings.max_side)
        work = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        faces = self._faces(work, settings.upsample, settings.adjust_threshold, scale, width, height, pad=0)
        if settings.pad_fraction > 0 and (not faces or _touches_border(faces[0].box, width, height)):
            pad = max(1, round(settings.pad_fraction * max(work.shape[:2])))
            padded = cv2.copyMakeBorder(work, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
            again = self._faces(padded, settings.upsample, settings.adjust_threshold, scale, width, height, pad)
            if again and (not faces or again[0].box.area > faces[0].box.area):
                faces = again
        last = max(settings.upsample + int(settings.retry_upsample), max_upsample)
        for upsample in range(settings.upsample + 1, last + 1):
            if faces:
                break
            faces = self._faces(work, upsample, settings.adjust_threshold, scale, width, height, pad=0)
        return faces

    def _faces(
        self, work: np.ndarray, upsample: int, adjust_threshold: float, scale: float, width: int, height: int, pad: int
    ) -> list[Face]:
        faces = []
        for rect, score in self._detect_raw(work, upsample, adjust_threshold):
            left, top, right, bottom = rect.left() - pad, rect.top() - pad, rect.right() - pad, rect.bottom() - pad
            box = Box.from_scaled(left, top, right, bottom, scale, width, height)
            if box.width > 0 and box.height > 0:
                # The box's exclusive right/bottom as the rectangle's, as the landmarks always had
                # (``_dlib_rect``), only not clipped: embeddings of faces inside the image do not move.
                unclipped = dlib.rectangle(
                    math.floor(left / scale),
                    math.floor(top / scale),
                    math.ceil((right + 1) / scale),
                    math.ceil((bottom + 1) / scale),
                )
                faces.append(Face(box, unclipped, float(score)))
        faces.sort(key=lambda face: face.box.area, reverse=True)
        return faces

    def _detect_raw(
        self, image: np.ndarray, upsample: int, adjust_threshold: float
    ) -> list[tuple[dlib.rectangle, float]]:
        if self.detector_kind == "cnn":
            with self._cnn_lock:
                detections = self._cnn_detector(image, upsample)
            return [(d.rect, d.confidence) for d in detections if d.confidence >= adjust_threshold]
        with self._hog_detectors.borrow() as hog_detector:
            rects, scores, _ = hog_detector.run(image, upsample, adjust_threshold)
        return list(zip(rects, scores, strict=True))

    # -- one image -----------------------------------------------------------------------------------

    def observe(
        self,
        image: np.ndarray,
        detection: DetectionSettings,
        quality: QualitySettings,
        photo: PhotoSettings | None = None,
    ) -> Observation:
        """Detect, choose the face and judge its quality (no embedding yet).

        Without ``photo``: the live rules (the largest face; ``MULTIPLE_FACES`` for a second face of
        comparable size; the ``quality`` limits). With ``photo``: the dominant face and the photo limits
        (``choice.choose_photo``), detection retried upsampled up to ``photo.max_upsample``.
        """
        height, width = image.shape[:2]
        with observe_stage("detection"):
            faces = self.find_faces(image, detection, photo.max_upsample if photo else 0)
        if not faces:
            return Observation(FaceStatus.NO_FACE)
        measured = {}
        if photo is None:
            choice = choose_live([face.box for face in faces], quality.multiple_face_ratio)
        else:
            measured = {i: sharpness_brightness(image, face.box) for i, face in enumerate(faces)}
            choice = choose_photo(
                [face.box for face in faces], [measured[i][0] for i in range(len(faces))], width, height, photo
            )
        face = faces[choice.index]
        observation = Observation(
            FaceStatus.OK,
            box=face.box,
            detection_score=face.score,
            faces_found=len(faces),
            faces_ignored=choice.ignored,
        )
        if choice.ambiguous:
            observation.status = FaceStatus.MULTIPLE_FACES
            return observation
        with observe_stage("landmarks"):
            observation.landmarks = self._landmarks(image, face.rect)
        observation.sharpness, observation.brightness = measured.get(choice.index) or sharpness_brightness(
            image, face.box
        )
        observation.quality = quality_score(
            face.box, observation.landmarks, observation.sharpness, observation.brightness, quality
        )
        limits = photo or quality
        if face.box.width < limits.min_face_px:
            observation.status = FaceStatus.FACE_TOO_SMALL
        elif observation.brightness < limits.min_brightness:
            observation.status = FaceStatus.TOO_DARK
        elif observation.sharpness < limits.min_sharpness:
            observation.status = FaceStatus.TOO_BLURRY
        return observation

    def _landmarks(self, image: np.ndarray, box: Box | dlib.rectangle) -> dlib.full_object_detection:
        rect = box if isinstance(box, dlib.rectangle) else _dlib_rect(box)
        with self._shape_lock:
            return self._shape_predictor(image, rect)

    @property
    def descriptor_instances(self) -> int:
        """How many calls the descriptor can serve at once (TFLite interpreters; dlib's: 1, behind a lock)."""
        return getattr(self._descriptor, "instances", 1)

    @staticmethod
    def chip(image: np.ndarray, landmarks: dlib.full_object_detection) -> np.ndarray:
        """dlib's aligned 150x150 RGB face chip, the one ``compute_face_descriptor(image, landmarks)`` uses."""
        return np.asarray(dlib.get_face_chip(image, landmarks, size=CHIP_SIZE, padding=CHIP_PADDING))

    def embed(self, image: np.ndarray, observation: Observation) -> np.ndarray:
        """The 128-d embedding of an observed face (only for status OK)."""
        return self.embed_many([image], [observation])[0]

    def embed_many(self, images: list[np.ndarray], observations: list[Observation]) -> np.ndarray:
        """The embeddings of observed faces, (n, 128): every chip in one descriptor call."""
        if any(observation.landmarks is None for observation in observations):
            raise ValueError("no landmarks: observe() the image first")
        with observe_stage("embedding"):
            chips = [self.chip(image, o.landmarks) for image, o in zip(images, observations, strict=True)]
            batch = np.stack(chips) if chips else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
            embeddings = self._descriptor.compute(batch)
        for observation, embedding in zip(observations, embeddings, strict=True):
            observation.embedding = embedding
        return embeddings

    def encode(
        self,
        image: np.ndarray,
        detection: DetectionSettings,
        quality: QualitySettings,
        photo: PhotoSettings | None = None,
    ) -> Observation:
        """Observe and, when the face is usable, embed (enrollment; ``photo`` for imported photos)."""
        observation = self.observe(image, detection, quality, photo)
        if observation.status is FaceStatus.OK:
            self.embed(image, observation)
        return observation


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_descriptor(kind: str, dlib_model: Path, num_jitters: int, num_threads: int, instances: int) -> Descriptor:
    """The face descriptor ``kind`` (``RECOGNITION_DESCRIPTOR``): the TFLite port with ``instances``
    interpreters of ``num_threads`` threads, or dlib's own (the only one that jitters)."""
    if kind == "dlib":
        return DlibDescriptor(dlib_model, num_jitters)
    if kind != "tflite":
        raise ValueError(f"unknown descriptor {kind!r}")
    if num_jitters > 1:
        raise ValueError("num_jitters > 1 needs dlib's descriptor (RECOGNITION_DESCRIPTOR=dlib)")
    return TFLiteDescriptor(DEFAULT_MODEL_PATH, num_threads, instances)
