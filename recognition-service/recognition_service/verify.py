"""The verification policy: do the frames of one capture show one person, the owner of the templates?

Which frames to embed (spread over the capture, best quality first), when to stop, the distance threshold,
the minimum number of matching frames and the same-person check. Numpy in, dataclasses out; no gRPC.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recognition_service.engine import (
    EMBEDDING_SIZE,
    DeadlineCheck,
    DetectionSettings,
    FaceEngine,
    FaceStatus,
    Observation,
)
from recognition_service.quality import QualitySettings


class VerifyReason(enum.Enum):
    MATCH = "MATCH"
    NO_MATCH = "NO_MATCH"
    NOT_ENOUGH_FACES = "NOT_ENOUGH_FACES"
    INCONSISTENT_IDENTITY = "INCONSISTENT_IDENTITY"


@dataclass(frozen=True)
class MatchSettings:
    threshold: float = 0.55
    min_matched_frames: int = 2
    max_intra_distance: float = 0.55
    # Embed at most this many usable frames of a Verify call (0: all).
    max_embeddings: int = 4
    # Stop embedding once the decision cannot change any more (enough matches, or too few left).
    early_stop: bool = True
    # Detect faces in every frame before choosing which to embed (slower; per-frame status for all).
    observe_all: bool = False


@dataclass
class FrameResult:
    observation: Observation
    distance: float | None = None  # to the closest template; None when not compared
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

    def first_usable(run: list[int]) -> int | None:
        for index in run:
            observation = frames[index].observation
            if observation.status is FaceStatus.NOT_EXAMINED:
                observation = observe(index)
            if observation.status is FaceStatus.OK:
                return index
        return None

    # Embeddings are computed in waves, each wave's chips in one descriptor call: as many runs as matches
    # are still missing (so a genuine capture is decided by one call of ``min_matched_frames`` chips), or
    # every run without early stop. Stopping between waves gives the decision one embedding at a time would.
    embeddings: list[np.ndarray] = []
    matched = 0
    max_intra = 0.0
    position = 0
    while position < len(plan) and max_intra <= match.max_intra_distance:
        if match.early_stop and (matched >= needed or matched + len(plan) - position < needed):
            break
        wave_size = needed - matched if match.early_stop else len(plan)
        chosen: list[int] = []
        while position < len(plan) and len(chosen) < wave_size:
            index = first_usable(plan[position])
            position += 1
            if index is not None:
                chosen.append(index)
            elif match.early_stop and matched + len(chosen) + len(plan) - position < needed:
                break
        if not chosen:
            continue
        check()
        wave = engine.embed_many([images[i] for i in chosen], [frames[i].observation for i in chosen])
        for index, embedding in zip(chosen, wave, strict=True):
            for other in embeddings:
                max_intra = max(max_intra, float(np.linalg.norm(other - embedding)))
            embeddings.append(embedding)
            frame = frames[index]
            frame.distance = closest_distance(embedding, templates)
            frame.matched = frame.distance <= match.threshold
            frame.compared = True
            matched += int(frame.matched)

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


@dataclass(frozen=True)
class SamePerson:
    """Whether some embeddings can all be one person (the enrollment check)."""

    same_person: bool
    max_intra_distance: float | None  # largest pairwise distance; None with fewer than two embeddings


def same_person(embeddings: Sequence[np.ndarray], match: MatchSettings) -> SamePerson:
    """One person when no two embeddings are further apart than ``match.max_intra_distance`` (the same
    threshold as Verify's INCONSISTENT_IDENTITY, so enrollment and login agree on what one person is)."""
    if len(embeddings) < 2:
        return SamePerson(True, None)
    vectors = np.asarray(embeddings, dtype=np.float64)
    largest = float(np.max(np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=-1)))
    return SamePerson(largest <= match.max_intra_distance, largest)


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
