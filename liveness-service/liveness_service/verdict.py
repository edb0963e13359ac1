"""The liveness engine: frames -> per-frame measurements -> sanity, passive and active checks -> one verdict.

Numpy in, plain dataclasses out; no grpc. Models are loaded once (``LivenessEngine.load``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from faceauth_common.boxes import Box
from faceauth_common.metrics import observe_stage
from liveness_service.challenge import TURN_LEFT, TURN_RIGHT, ActionOutcome, judge_challenge
from liveness_service.config import Settings
from liveness_service.faces import FaceAnalyzer
from liveness_service.flash import (
    FLASH_NOT_REFLECTED,
    FlashOutcome,
    FlashStep,
    judge_flash,
    measure_capture,
    validate_steps,
)
from liveness_service.landmarks import eye_aspect_ratio, head_yaw_degrees
from liveness_service.motion import SYNTHETIC_MOTION, changes_from_first, judge_motion
from liveness_service.passive import PassiveModel
from liveness_service.planarity import PLANAR_MOTION, judge_planarity
from liveness_service.sanity import (
    FRAME_TIMING,
    NO_FACE,
    STATIC_CAPTURE,
    capture_span_ms,
    colour_changes,
    colour_signature,
    face_patch,
    frame_timing_problem,
    judge_sanity,
    patch_differences,
)

LIVE = "LIVE"
# Face frames before the flash's first colour that the passive score needs to judge those alone.
MIN_UNLIT_FRAMES = 2
SPOOF_SUSPECTED = "SPOOF_SUSPECTED"
CHALLENGE_NOT_MET = "CHALLENGE_NOT_MET"


class InvalidRequest(ValueError):
    """The request is malformed (not a liveness failure): maps to INVALID_ARGUMENT."""


class Cancelled(Exception):
    """The caller's deadline passed or it went away; the work was abandoned."""


@dataclass
class FrameResult:
    face_count: int
    box: Box | None
    live_score: float | None = None
    detected_box: Box | None = None  # may reach past the frame (see FaceObservation); the passive crops use it
    eye_aspect_ratio: float | None = None
    yaw_degrees: float | None = None
    difference_to_previous: float | None = None
    colour_change_to_previous: float | None = None
    flash_expected_rgb: int | None = None
    skin_rgb: tuple[float, float, float] | None = None
    background_rgb: tuple[float, float, float] | None = None


@dataclass
class Verdict:
    live: bool
    reason: str
    failed_checks: list[str]
    live_score: float | None  # None when the passive check is disabled or no face was scored
    live_threshold: float
    frames: list[FrameResult]
    actions: list[ActionOutcome] = field(default_factory=list)
    model_version: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    flash: FlashOutcome | None = None  # None when the flash check is disabled
    planarity_residual: float | None = None  # None when no turn was judged
    timing_problem: str = ""


@dataclass
class _MeasuredFrame:
    result: FrameResult
    landmarks: np.ndarray | None
    patch: np.ndarray | None
    signature: np.ndarray | None


class LivenessEngine:
    def __init__(self, settings: Settings, analyzer: FaceAnalyzer, passive: PassiveModel | None) -> None:
        self.settings = settings
        self.analyzer = analyzer
        self.passive = passive
        self.threshold = (
            settings.live_threshold
            if settings.live_threshold is not None
            else (passive.spec.threshold if passive else 0.5)
        )
        self.model_version = passive.spec.version if passive else ""
        # The frames of one Check are measured side by side (HOG, the bulk of it, releases the GIL): one request
        # alone gets every core; many share these threads, as many as the server's (one detector each).
        self._frame_pool = ThreadPoolExecutor(settings.server.threads, thread_name_prefix="liveness-frames")

    @classmethod
    def load(cls, settings: Settings) -> LivenessEngine:
        # One detector and one interpreter per server thread (they release the GIL; see faces.py).
        threads = settings.server.threads
        analyzer = FaceAnalyzer(settings.detect_max_side, settings.second_face_ratio, threads)
        passive = (
            PassiveModel(settings.passive_model, settings.tflite_threads, threads)
            if "passive" in settings.checks
            else None
        )
        engine = cls(settings, analyzer, passive)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Run every stage once (allocations, lazy inits) so the first real call is not slow."""
        blank = np.full((480, 640, 3), 128, np.uint8)
        self.analyzer.observe(blank)
        self.analyzer.landmarks(blank, Box(220, 140, 420, 340))
        if self.passive:
            for batch in (1, 8):
                self.passive.score([blank] * batch, [Box(220, 140, 420, 340)] * batch)

    def validate(
        self, frame_count: int, actions: list[str], frame_times_ms: list[int], flash: list[FlashStep] | None = None
    ) -> None:
        settings = self.settings
        if frame_times_ms:
            if len(frame_times_ms) != frame_count:
                raise InvalidRequest(f"frame_times_ms has {len(frame_times_ms)} values for {frame_count} frames")
            if frame_times_ms[0] < 0 or any(b < a for a, b in itertools.pairwise(frame_times_ms)):
                raise InvalidRequest("frame_times_ms must be non-negative and non-decreasing")
        if len(actions) > settings.max_challenge_actions:
            raise InvalidRequest(
                f"the challenge has {len(actions)} actions, the limit is {settings.max_challenge_actions}"
            )
        if "active" in settings.checks and len(actions) < settings.min_challenge_actions:
            raise InvalidRequest(f"the challenge needs at least {settings.min_challenge_actions} action(s)")
        for action in actions:
            if action not in settings.allowed_actions:
                raise InvalidRequest(f"action {action} is not allowed; allowed: {', '.join(settings.allowed_actions)}")
        problem = validate_steps(flash or [])
        if problem:
            raise InvalidRequest(problem)
        if "flash" in settings.checks and not flash:
            raise InvalidRequest(
                "flash: the flash check is enabled (LIVENESS_CHECKS) and the request carries no flash sequence"
            )

    def _measure(self, image: np.ndarray, with_landmarks: bool, cancelled: Callable[[], bool]) -> _MeasuredFrame:
        """One frame's face, landmarks and what the checks compare between frames (a frame-pool thread)."""
        if cancelled():
            raise Cancelled
        seen = self.analyzer.observe(image, with_landmarks=with_landmarks)
        result = FrameResult(seen.face_count, seen.box, detected_box=seen.detected_box)
        if seen.landmarks is not None:
            result.eye_aspect_ratio = eye_aspect_ratio(seen.landmarks)
            result.yaw_degrees = head_yaw_degrees(seen.landmarks, image.shape[1], image.shape[0])
        return _MeasuredFrame(
            result,
            seen.landmarks,
            face_patch(image, seen.box) if seen.box is not None else None,
            colour_signature(image, seen.box) if seen.box is not None else None,
        )

    def check(
        self,
        images_rgb: list[np.ndarray],
        actions: list[str],
        frame_times_ms: list[int],
        cancelled: Callable[[], bool] = lambda: False,
        flash: list[FlashStep] | None = None,
        flash_start_ms: float = 0.0,
    ) -> Verdict:
        """``flash``: the colour sequence the page painted from ``flash_start_ms`` (on the frame_times_ms clock)."""
        self.validate(len(images_rgb), actions, frame_times_ms, flash)
        checks = self.settings.checks
        times_ms = (
            [float(t) for t in frame_times_ms]
            if frame_times_ms
            else [k * 1000.0 / self.settings.nominal_fps for k in range(len(images_rgb))]
        )
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with_landmarks = bool({"active", "flash", "sanity"} & checks)
        futures = [self._frame_pool.submit(self._measure, image, with_landmarks, cancelled) for image in images_rgb]
        try:
            measured = [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        frames = [m.result for m in measured]
        landmarks = [m.landmarks for m in measured]
        patches = [m.patch for m in measured]
        signatures = [m.signature for m in measured]
        for result, difference, colour in zip(
            frames, patch_differences(patches), colour_changes(signatures), strict=True
        ):
            result.difference_to_previous = difference
            result.colour_change_to_previous = colour
        timings["faces"] = (time.perf_counter() - started) * 1000

        flash_outcome: FlashOutcome | None = None
        if "flash" in checks and flash:
            if cancelled():
                raise Cancelled
            stage = time.perf_counter()
            with observe_stage("flash"):
                samples = measure_capture(
                    images_rgb, landmarks, [f.box for f in frames], self.settings.flash.background_scale
                )
                flash_outcome = judge_flash(samples, times_ms, flash, flash_start_ms, self.settings.flash)
            for result, sample, expected in zip(frames, samples, flash_outcome.expected_rgb, strict=True):
                if sample is not None:
                    result.skin_rgb = tuple(float(v) for v in sample.skin)  # type: ignore[assignment]
                    result.background_rgb = tuple(float(v) for v in sample.background)  # type: ignore[assignment]
                    result.flash_expected_rgb = expected
            timings["flash"] = (time.perf_counter() - stage) * 1000

        failed: list[str] = []
        if "sanity" in checks:
            span = capture_span_ms(len(images_rgb), frame_times_ms, self.settings.nominal_fps)
            failed += judge_sanity(
                [f.face_count for f in frames],
                [f.box for f in frames],
                [f.difference_to_previous for f in frames],
                _judged_colour_changes(frames, flash_outcome),
                span,
                self.settings.sanity,
            )
        static, synthetic = False, False
        if {"sanity", "active"} & checks:
            if cancelled():
                raise Cancelled
            stage = time.perf_counter()
            changes = changes_from_first(images_rgb, landmarks, [f.box for f in frames])
            static, synthetic = judge_motion(changes, self.settings.motion)
            timings["motion"] = (time.perf_counter() - stage) * 1000
        timing_problem = ""
        if "sanity" in checks:
            if static and STATIC_CAPTURE not in failed:
                failed.append(STATIC_CAPTURE)
            timing_problem = frame_timing_problem(frame_times_ms, self.settings.nominal_fps, self.settings.sanity)
            if timing_problem:
                failed.append(FRAME_TIMING)

        live_score: float | None = None
        if self.passive is not None:
            if cancelled():
                raise Cancelled
            stage = time.perf_counter()
            with_face = [i for i, f in enumerate(frames) if f.detected_box is not None]
            with observe_stage("cnn"):
                scores = self.passive.score(
                    [images_rgb[i] for i in with_face],
                    [frames[i].detected_box for i in with_face],  # type: ignore[misc]
                    self._frame_pool.map,
                )
            for index, score in zip(with_face, scores, strict=True):
                frames[index].live_score = float(score)
            timings["passive"] = (time.perf_counter() - stage) * 1000
            if len(scores):
                # The median resists a few odd frames (motion blur, a half-closed blink) in either direction. With a
                # flash, the higher of that and the median of the frames taken before its first colour (the page
                # films LEAD_MS first), when there are enough: the CNN can take a face lit by a saturated colour for
                # a print's or a screen's colour cast, and a few unlit frames alone can be unlucky.
                live_score = float(np.median(scores))
                unlit = [
                    score
                    for index, score in zip(with_face, scores, strict=True)
                    if flash_outcome is not None and times_ms[index] <= flash_start_ms
                ]
                if len(unlit) >= MIN_UNLIT_FRAMES:
                    live_score = max(live_score, float(np.median(unlit)))
                if live_score < self.threshold:
                    failed.append(SPOOF_SUSPECTED)
            elif NO_FACE not in failed:
                failed.append(NO_FACE)

        if flash_outcome is not None and not flash_outcome.reflected:
            failed.append(FLASH_NOT_REFLECTED)

        outcomes: list[ActionOutcome] = []
        planarity_residual: float | None = None
        if "active" in checks:
            outcomes = judge_challenge(
                actions,
                [f.eye_aspect_ratio for f in frames],
                [f.yaw_degrees for f in frames],
                self.settings.challenge,
            )
            if not all(o.performed for o in outcomes):
                failed.append(CHALLENGE_NOT_MET)
            stage = time.perf_counter()
            yaws = [f.yaw_degrees for f in frames]
            turned = any(o.performed and o.action in (TURN_LEFT, TURN_RIGHT) for o in outcomes)
            planarity_residual, planar = judge_planarity(
                landmarks, [f.box for f in frames], yaws, self.settings.planarity, turn_performed=turned
            )
            timings["planarity"] = (time.perf_counter() - stage) * 1000
            if planar:
                failed.append(PLANAR_MOTION)
            if synthetic:
                failed.append(SYNTHETIC_MOTION)
        timings["total"] = (time.perf_counter() - started) * 1000
        return Verdict(
            live=not failed,
            reason=failed[0] if failed else LIVE,
            failed_checks=failed,
            live_score=live_score,
            live_threshold=self.threshold,
            frames=frames,
            actions=outcomes,
            model_version=self.model_version,
            timings_ms=timings,
            flash=flash_outcome,
            planarity_residual=planarity_residual,
            timing_problem=timing_problem,
        )


def _judged_colour_changes(frames: list[FrameResult], flash: FlashOutcome | None) -> list[float | None]:
    """The colour changes the track-continuity check judges: every pair, unless the face reflected the flash sequence.
    Then the screen's colours legitimately change the face's hue from frame to frame, and judging only the pairs within
    one step still refused genuine captures (the estimated lag and the camera's exposure smear a change over more than
    a frame: 3-5 of 60 in the attack suite); a capture that follows the sequence is one take already (a spliced-in
    recording does not reflect it), recognition checks that it is one person, and the box-jump tests still apply."""
    changes = [f.colour_change_to_previous for f in frames]
    if flash is None or not flash.reflected:
        return changes
    return [None] * len(changes)
