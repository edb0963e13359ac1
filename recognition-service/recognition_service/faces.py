"""The recognition domain: detect, choose, quality-check, embed and compare faces.

Numpy in, numpy out; no gRPC here. Models are dlib's (files from the ``face_recognition_models``
package, the same ones ``face_recognition`` uses): the HOG frontal-face detector (or the MMOD CNN
detector as an option), the 5-point landmark predictor and the ResNet face encoder (128-d).
Embeddings are computed exactly as ``face_recognition.face_encodings(model="small")`` does them,
so templates made with ``face_recognition`` stay comparable.
"""

from __future__ import annotations

import enum
import math
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import dlib
import numpy as np

from faceauth_common.boxes import Box, downscale_factor
from faceauth_common.metrics import observe_stage
from faceauth_common.threadsafe import InstancePool

# Embeddings are only comparable within one version: encoder weights + alignment (5-point chip).
MODEL_VERSION = "dlib-resnet-v1/5pt/fr-models-0.3.0"
EMBEDDING_SIZE = 128

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


class VerifyReason(enum.Enum):
    MATCH = "MATCH"
    NO_MATCH = "NO_MATCH"
    NOT_ENOUGH_FACES = "NOT_ENOUGH_FACES"
    INCONSISTENT_IDENTITY = "INCONSISTENT_IDENTITY"


@dataclass(frozen=True)
class DetectionSettings:
    # Frames are downscaled so their longer side is at most this before detection (boxes are mapped
    # back). HOG's smallest face is ~80 px at the working scale, i.e. 80 / scale px in the original.
    max_side: int = 400
    upsample: int = 0
    # When nothing is found, try once more with one more upsampling step (enrollment images only).
    retry_upsample: bool = False
    adjust_threshold: float = 0.0


@dataclass(frozen=True)
class QualitySettings:
    min_face_px: int = 80  # face box width in original pixels
    min_sharpness: float = 10.0  # variance of the Laplacian on the face resized to 128 px wide
    min_brightness: float = 40.0  # mean luma of the face crop
    # A second face whose box area is at least this fraction of the largest one's: someone else is in
    # view and the frame is rejected. Smaller detections (background faces, logos) are ignored.
    multiple_face_ratio: float = 0.4


@dataclass(frozen=True)
class MatchSettings:
    threshold: float = 0.55
    min_matched_frames: int = 2
    max_intra_distance: float = 0.55
    # Embed at most this many usable frames of a Verify call (0: all). The encoder is ~90% of the cost.
    max_embeddings: int = 4
    # Stop embedding once the decision cannot change any more (enough matches, or too few left).
    early_stop: bool = True
    # Detect faces in every frame before choosing which to embed (slower; per-frame status for all).
    observe_all: bool = False


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
    landmarks: dlib.full_object_detection | None = field(default=None, repr=False)


@dataclass
class FrameResult:
    observation: Observation
    distance: float = -1.0  # to the closest template; -1 when not compared
    matched: bool = False
    compared: bool = False


@dataclass
class VerifyResult:
    match: bool
    reason: VerifyReason
    frames: list[FrameResult]
    matched_frames: int
    compared_frames: int
    max_intra_distance: float


def _dlib_rect(box: Box) -> dlib.rectangle:
    return dlib.rectangle(box.left, box.top, box.right, box.bottom)


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

    def __init__(self, detector: str = "hog", num_jitters: int = 1, threads: int = 1) -> None:
        paths = model_paths()
        self.detector_kind = detector
        # No dlib object may be used by two threads at once (gRPC serves calls on ``threads`` threads;
        # a shared HOG detector segfaults). HOG releases the GIL, so there is one detector per server
        # thread (0.6 s each to build, so at load) and threads detect in parallel; the shape
        # predictor and the DNNs hold the GIL, so one instance each behind a lock costs no
        # parallelism (bench/results/gil.md).
        if detector == "cnn":
            self._cnn_detector = dlib.cnn_face_detection_model_v1(str(paths["cnn_detector"]))
        else:
            self._hog_detectors = InstancePool(dlib.get_frontal_face_detector, threads)
        self._shape_predictor = dlib.shape_predictor(str(paths["shape_predictor"]))
        self._encoder = dlib.face_recognition_model_v1(str(paths["encoder"]))
        self.num_jitters = num_jitters
        self._encoder_lock = threading.Lock()
        self._cnn_lock = threading.Lock()
        self._shape_lock = threading.Lock()

    @classmethod
    def load(cls, detector: str = "hog", num_jitters: int = 1, threads: int = 1) -> FaceEngine:
        engine = cls(detector, num_jitters, threads)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Run every model once so the first request does not pay for lazy initialisation.

        The input is a synthetic face-like image (skin-toned oval, dark eyes and mouth): detection
        runs over it, and landmarks + the encoder run on its central box whether or not HOG accepts
        it, so the encoder is always exercised. Its output must be 128 finite numbers.
        """
        image = _synthetic_face(240)
        self.detect(image, DetectionSettings(max_side=240, upsample=0))
        box = Box(60, 50, 180, 190)
        landmarks = self._landmarks(image, box)
        with self._encoder_lock:
            descriptor = self._encoder.compute_face_descriptor(image, landmarks, 1)
        embedding = np.asarray(descriptor, dtype=np.float64)
        if embedding.shape != (EMBEDDING_SIZE,) or not np.all(np.isfinite(embedding)):
            raise RuntimeError("the face encoder produced an invalid embedding during warm-up")

    # -- detection ---------------------------------------------------------------------------------

    def detect(self, image: np.ndarray, settings: DetectionSettings) -> list[tuple[Box, float]]:
        """Faces as (box in original pixels, detector score), largest first."""
        height, width = image.shape[:2]
        scale = downscale_factor(width, height, settings.max_side)
        work = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        found = self._detect_raw(work, settings.upsample, settings.adjust_threshold)
        if not found and settings.retry_upsample:
            found = self._detect_raw(work, settings.upsample + 1, settings.adjust_threshold)
        faces = []
        for rect, score in found:
            box = Box.from_scaled(rect.left(), rect.top(), rect.right(), rect.bottom(), scale, width, height)
            if box.area > 0:
                faces.append((box, float(score)))
        faces.sort(key=lambda item: item[0].area, reverse=True)
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

    def observe(self, image: np.ndarray, detection: DetectionSettings, quality: QualitySettings) -> Observation:
        """Detect, choose the dominant face and judge its quality (no embedding yet)."""
        with observe_stage("detection"):
            faces = self.detect(image, detection)
        if not faces:
            return Observation(FaceStatus.NO_FACE)
        box, score = faces[0]
        observation = Observation(FaceStatus.OK, box=box, detection_score=score, faces_found=len(faces))
        if len(faces) > 1 and faces[1][0].area >= quality.multiple_face_ratio * box.area:
            observation.status = FaceStatus.MULTIPLE_FACES
            return observation
        with observe_stage("landmarks"):
            observation.landmarks = self._landmarks(image, box)
        observation.sharpness, observation.brightness = _sharpness_brightness(image, box)
        observation.quality = _quality(observation, quality)
        if box.width < quality.min_face_px:
            observation.status = FaceStatus.FACE_TOO_SMALL
        elif observation.brightness < quality.min_brightness:
            observation.status = FaceStatus.TOO_DARK
        elif observation.sharpness < quality.min_sharpness:
            observation.status = FaceStatus.TOO_BLURRY
        return observation

    def _landmarks(self, image: np.ndarray, box: Box) -> dlib.full_object_detection:
        with self._shape_lock:
            return self._shape_predictor(image, _dlib_rect(box))

    def embed(self, image: np.ndarray, observation: Observation) -> np.ndarray:
        """The 128-d embedding of an observed face (only for status OK)."""
        if observation.landmarks is None:
            raise ValueError("no landmarks: observe() the image first")
        with observe_stage("embedding"), self._encoder_lock:
            descriptor = self._encoder.compute_face_descriptor(image, observation.landmarks, self.num_jitters)
        observation.embedding = np.asarray(descriptor, dtype=np.float64)
        return observation.embedding

    def encode(self, image: np.ndarray, detection: DetectionSettings, quality: QualitySettings) -> Observation:
        """Observe and, when the face is usable, embed (enrollment)."""
        observation = self.observe(image, detection, quality)
        if observation.status is FaceStatus.OK:
            self.embed(image, observation)
        return observation


# -- comparison -------------------------------------------------------------------------------------


def closest_distance(embedding: np.ndarray, templates: np.ndarray) -> float:
    """Euclidean distance to the closest template (templates: (n, 128))."""
    return float(np.min(np.linalg.norm(templates - embedding, axis=1)))


def embedding_order(frames: Sequence[Observation], limit: int) -> list[int]:
    """Which usable frames to embed, in which order.

    The usable frames are split into ``limit`` runs of consecutive frames and the best-quality
    frame of each run is taken, ordered first run, last run, then the rest. So the first two
    embeddings are as far apart in time as possible, which is what the same-person check needs
    when the call stops early.
    """
    usable = [index for index, frame in enumerate(frames) if frame.status is FaceStatus.OK]
    count = len(usable) if limit <= 0 else min(limit, len(usable))
    if count == 0:
        return []
    runs = [run for run in np.array_split(np.asarray(usable), count) if len(run)]
    picks = [int(max(run, key=lambda index: frames[index].quality)) for run in runs]
    if len(picks) <= 2:
        return picks
    return [picks[0], picks[-1], *picks[1:-1]]


def spread_runs(count: int, limit: int) -> list[list[int]]:
    """Frame indices split into ``limit`` runs of consecutive frames (0: one run per frame), ordered
    first run, last run (backwards), then the middle ones (see ``embedding_order``)."""
    runs_wanted = count if limit <= 0 else min(limit, count)
    if runs_wanted == 0:
        return []
    runs = [[int(i) for i in run] for run in np.array_split(np.arange(count), runs_wanted) if len(run)]
    if len(runs) == 1:
        return runs
    # The last run is walked backwards so the first two frames tried are the capture's first and last.
    return [runs[0], runs[-1][::-1], *runs[1:-1]]


def verify(
    engine: FaceEngine,
    images: Sequence[np.ndarray],
    templates: np.ndarray,
    detection: DetectionSettings,
    quality: QualitySettings,
    match: MatchSettings,
    check_deadline: DeadlineCheck | None = None,
) -> VerifyResult:
    """Do these frames show one person, the owner of ``templates``? (1:1 verification).

    With ``match.observe_all`` every frame is detected first and the best-quality frame of each run
    is embedded. Otherwise (the default, cheaper) the runs are visited in order and each run's frames
    are detected only until one has a usable face, which is then embedded; frames the decision did
    not need stay ``NOT_EXAMINED``.
    """
    check = check_deadline or (lambda: None)
    frames = [FrameResult(Observation(FaceStatus.NOT_EXAMINED)) for _ in images]

    def observe(index: int) -> Observation:
        check()
        frames[index].observation = engine.observe(images[index], detection, quality)
        return frames[index].observation

    needed = match.min_matched_frames
    if match.observe_all:
        for index in range(len(images)):
            observe(index)
        plan = [[index] for index in embedding_order([f.observation for f in frames], match.max_embeddings)]
        if len(plan) < needed:
            return VerifyResult(False, VerifyReason.NOT_ENOUGH_FACES, frames, 0, 0, 0.0)
    else:
        plan = spread_runs(len(images), match.max_embeddings)

    embeddings: list[np.ndarray] = []
    matched = 0
    max_intra = 0.0
    for position, run in enumerate(plan):
        chosen = None
        for index in run:
            observation = frames[index].observation
            if observation.status is FaceStatus.NOT_EXAMINED:
                observation = observe(index)
            if observation.status is FaceStatus.OK:
                chosen = index
                break
        if chosen is not None:
            check()
            frame = frames[chosen]
            embedding = engine.embed(images[chosen], frame.observation)
            for other in embeddings:
                max_intra = max(max_intra, float(np.linalg.norm(other - embedding)))
            embeddings.append(embedding)
            frame.distance = closest_distance(embedding, templates)
            frame.matched = frame.distance <= match.threshold
            frame.compared = True
            matched += int(frame.matched)
            if max_intra > match.max_intra_distance:
                break
        if match.early_stop:
            remaining = len(plan) - position - 1
            if matched >= needed or matched + remaining < needed:
                break

    compared = len(embeddings)
    usable = sum(frame.observation.status is FaceStatus.OK for frame in frames)
    if max_intra > match.max_intra_distance:
        reason = VerifyReason.INCONSISTENT_IDENTITY
    elif matched >= needed:
        reason = VerifyReason.MATCH
    elif usable < needed:
        reason = VerifyReason.NOT_ENOUGH_FACES
    else:
        reason = VerifyReason.NO_MATCH
    return VerifyResult(reason is VerifyReason.MATCH, reason, frames, matched, compared, max_intra)


def parse_templates(vectors: Sequence[Sequence[float]], max_templates: int) -> np.ndarray:
    """Validate template embeddings; raises ValueError with a message for people."""
    if not vectors:
        raise ValueError("no templates were sent")
    if len(vectors) > max_templates:
        raise ValueError(f"{len(vectors)} templates were sent, the limit is {max_templates}")
    for index, vector in enumerate(vectors):
        if len(vector) != EMBEDDING_SIZE:
            raise ValueError(f"template {index} has {len(vector)} values, expected {EMBEDDING_SIZE}")
    array = np.asarray(vectors, dtype=np.float64)
    bad = np.flatnonzero(~np.all(np.isfinite(array), axis=1))
    if bad.size:
        raise ValueError(f"template {int(bad[0])} contains NaN or infinite values")
    return array


# -- quality ----------------------------------------------------------------------------------------


def _sharpness_brightness(image: np.ndarray, box: Box) -> tuple[float, float]:
    crop = image[box.top : box.bottom, box.left : box.right]
    gray = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    brightness = float(gray.mean())
    # A fixed working width makes sharpness comparable between small and large faces.
    target_width = 128
    target_height = max(1, round(gray.shape[0] * target_width / max(1, gray.shape[1])))
    resized = cv2.resize(gray, (target_width, target_height), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(resized, cv2.CV_64F).var())
    return sharpness, brightness


def _quality(observation: Observation, settings: QualitySettings) -> float:
    """0..1: frontal pose (from landmarks), face size, sharpness and exposure."""
    assert observation.box is not None and observation.landmarks is not None
    points = np.array([(p.x, p.y) for p in observation.landmarks.parts()], dtype=np.float64)
    # 5-point model: 0-1 one eye's corners, 2-3 the other's, 4 the base of the nose.
    eye_a, eye_b, nose = points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    eye_vector = eye_b - eye_a
    interocular = float(np.linalg.norm(eye_vector)) or 1.0
    eye_mid = (eye_a + eye_b) / 2
    # Yaw: how far the nose sits from the eyes' midpoint along the eye line; roll: eye-line angle.
    yaw = abs(float(np.dot(nose - eye_mid, eye_vector / interocular))) / interocular
    roll = abs(math.degrees(math.atan2(eye_vector[1], eye_vector[0])))
    roll = min(roll, 180 - roll)
    frontal = _clip(1 - yaw / 0.5) * _clip(1 - roll / 45)
    size = _clip(observation.box.width / (2 * settings.min_face_px))
    sharp = _clip(observation.sharpness / (4 * max(settings.min_sharpness, 1e-6)))
    exposure = _clip(1 - abs(observation.brightness - 128) / 128 * 1.5 + 0.25)
    return round(0.4 * frontal + 0.2 * size + 0.25 * sharp + 0.15 * exposure, 4)


def _clip(value: float) -> float:
    return max(0.0, min(1.0, float(value)))


def _synthetic_face(size: int) -> np.ndarray:
    """A plain face-like drawing used for warm-up (no real person's image is bundled)."""
    image = np.full((size, size, 3), 200, dtype=np.uint8)
    centre = (size // 2, size // 2 + size // 20)
    cv2.ellipse(image, centre, (size // 4, size // 3), 0, 0, 360, (205, 160, 130), -1)
    for dx in (-size // 10, size // 10):
        cv2.ellipse(
            image, (size // 2 + dx, size // 2 - size // 20), (size // 25, size // 50), 0, 0, 360, (40, 30, 30), -1
        )
    cv2.line(image, (size // 2, size // 2), (size // 2 - size // 40, size // 2 + size // 12), (150, 110, 90), 2)
    cv2.ellipse(image, (size // 2, size // 2 + size // 6), (size // 12, size // 40), 0, 0, 360, (120, 60, 60), -1)
    return image
