"""The capture ceremony every face step goes through: challenge → capture → liveness ∥ recognition → decision → audit.

One ``Ceremony`` per purpose (``LOGIN``, ``ENROLLMENT``; step-up and recovery are new instances, not new
copies). It issues the challenge bound to this browser session, consumes its nonce (single use), reads and
checks the frames, asks both services in parallel within their deadlines, decides from their answers
(``decision.py``) and writes the audit row under its purpose's event. What a purpose does around that — the
password and throttling of a login, the templates stored by an enrollment — stays with its user (``login.py``,
``enrollment.py``).

Everything here returns domain results (``Issued``, ``Refused``, ``SignedIn``, ``Enrolled``): what happened and
why, never an HTTP status. The blueprints (``blueprints/api.py``) map them to responses.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import FileStorage

from auth_web import audit, context, reasons
from auth_web import metrics as auth_metrics
from auth_web.challenges import Challenge, challenge_actions_for, timing_problem
from auth_web.config import Settings
from auth_web.decision import Decision, EnrollmentDecision, decide_enrollment, decide_login
from auth_web.face_services import LivenessInput, ServiceUnavailable
from auth_web.flash import FlashStep, capture_ms, frames_to_cover, random_sequence, total_ms
from auth_web.uploads import parse_flash_start, parse_frame_times, read_frames
from faceauth.liveness.v1 import liveness_pb2
from faceauth_common.imaging import ImageLimits


class Refusal(enum.StrEnum):
    """What the client is told when a step is refused (the JSON ``error``); the audit's reason stays apart."""

    BAD_REQUEST = "bad_request"
    BAD_USERNAME = "bad_username"
    CHALLENGE_INVALID = "challenge_invalid"
    RATE_LIMITED = "rate_limited"
    LOCKED = "locked"  # too many failures for this name and address (or this address): told how long it lasts
    LOGIN_FAILED = "login_failed"
    # The first factor was right but the account cannot finish the face step (no face data, disabled).
    ACCOUNT_UNUSABLE = "account_unusable"
    PASSKEY_FAILED = "passkey_failed"  # a passkey could not be registered
    FALLBACK_NOT_ALLOWED = "fallback_not_allowed"
    BAD_CAPTURE = "bad_capture"
    ENROLLMENT_FAILED = "enrollment_failed"


@dataclass(frozen=True)
class Issued:
    """A challenge to perform: its nonce and actions go to the capture page."""

    challenge: Challenge


@dataclass(frozen=True)
class Refused:
    """Refused: ``refusal`` and ``message`` are for the client, ``reason`` (audit code) is not shown to it."""

    refusal: Refusal
    reason: str
    message: str
    retry_after: int | None = None  # seconds, for RATE_LIMITED and LOCKED
    # After a failed face check whose first factor passed: another way to finish ("passkey"), when policy allows.
    fallback: str | None = None


@dataclass(frozen=True)
class SignedIn:
    """Signed in (the session is rotated and bound to the user); ``message`` greets them."""

    reason: str
    username: str
    message: str


@dataclass(frozen=True)
class Enrolled:
    """``templates`` new face templates replace the user's old ones."""

    reason: str
    templates: int
    message: str


Result = Issued | Refused | SignedIn | Enrolled


@dataclass(frozen=True)
class Capture:
    """The checked frames of one capture, their times (ms since the first) and, with a flash, when its first
    colour was painted (same clock)."""

    frames: list[bytes]
    frame_times: list[int]
    flash_start_ms: int = 0


@dataclass(frozen=True)
class Subject:
    """Whom the audit row is about: the account when there is one, the name that was claimed."""

    user_id: int | None
    claimed: str


@dataclass(frozen=True)
class Scores:
    """The numbers an audit row keeps about a capture (none for a capture that was never judged)."""

    live_score: float | None = None
    match_distance: float | None = None
    matched_frames: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def capture_frames_for(config: Settings, flash: Sequence[FlashStep]) -> int:
    """Frames the page captures: AUTH_CAPTURE_FRAMES, or more to cover the unlit lead-in, the whole flash sequence and
    its tail (never more than AUTH_MAX_FRAMES; settings validation makes the longest sequence fit)."""
    if not flash:
        return config.capture.frames
    needed = frames_to_cover(capture_ms(total_ms(flash)), config.capture.fps)
    return min(config.max_frames, max(config.capture.frames, needed))


@dataclass(frozen=True)
class Ceremony:
    """The ceremony for one purpose; ``purpose`` names both the challenge's purpose and the audit event.

    ``with_actions``: the challenge asks for AUTH_CHALLENGE_LENGTH actions (the calibration asks for none).
    ``always_flash``: a flash sequence even when AUTH_FLASH is off (the calibration of the flash itself).
    """

    purpose: str
    with_actions: bool = True
    always_flash: bool = False

    def issue(self, *, username: str = "", user_id: int | None = None, throttle_member: str = "") -> Challenge:
        """A new challenge for this browser session: its actions and flash sequence drawn with a CSPRNG, single
        use."""
        config = context.settings()
        actions = challenge_actions_for(config.challenge_actions, config.challenge_length) if self.with_actions else ()
        flash = random_sequence(config.flash) if config.flash_enabled or self.always_flash else ()
        return context.challenges().issue(
            self.purpose,
            actions,
            context.browser_session().hash,
            username=username,
            user_id=user_id,
            flash=flash,
            capture_frames=capture_frames_for(config, flash),
            throttle_member=throttle_member,
        )

    def consume(self, nonce: str) -> tuple[Challenge | None, str]:
        """The challenge of ``nonce`` taken out of the store, or None and the audit reason it is unusable for."""
        return context.challenges().consume(nonce, self.purpose, context.browser_session().hash)

    def consume_for(self, nonce: str, subject: Subject, expired_message: str) -> Challenge | Refused:
        """The challenge of ``nonce`` if it was issued to ``subject``'s account; otherwise the refusal, audited."""
        challenge, invalid = self.consume(nonce)
        if challenge is None or challenge.user_id != subject.user_id:
            reason = invalid or reasons.CHALLENGE_INVALID
            self.record(subject, reasons.FAILURE, reason)
            return Refused(Refusal.CHALLENGE_INVALID, reason, expired_message)
        return challenge

    def read_capture(
        self,
        challenge: Challenge,
        files: list[FileStorage],
        frame_times_raw: str | None,
        flash_start_raw: str | None = None,
    ) -> Capture:
        """The uploaded frames within the settings' caps, their times, and the flash's start when the challenge
        has a flash (``CaptureError`` when any is unusable)."""
        config = context.settings()
        limits = ImageLimits(config.max_frame_bytes, config.max_frame_pixels, config.max_frames)
        frames = read_frames(files, min_frames=config.min_frames, max_frames=config.max_frames, limits=limits)
        times = parse_frame_times(frame_times_raw, len(frames))
        flash_start = parse_flash_start(flash_start_raw) if challenge.flash else 0
        return Capture(frames, times, flash_start)

    def timing(self, challenge: Challenge, capture: Capture) -> str | None:
        """``CHALLENGE_LATE`` or ``CAPTURE_TOO_EARLY`` when the capture cannot have come from the page in time
        (``challenges.timing_problem``), else None."""
        config = context.settings()
        return timing_problem(
            challenge,
            context.challenges().clock(),
            capture.frame_times,
            placement_wait_ms=config.capture.placement_wait_ms,
            notice_ms=config.flash.notice_ms,
            fps=config.capture.fps,
            slack_seconds=config.capture_slack_seconds,
        )

    def _liveness_input(self, challenge: Challenge, capture: Capture) -> LivenessInput:
        return LivenessInput(challenge.actions, capture.frame_times, challenge.flash, capture.flash_start_ms)

    def _checked(self, check: liveness_pb2.CheckResponse) -> liveness_pb2.CheckResponse:
        if check.HasField("flash"):
            auth_metrics.flash_checked(self.purpose, check.flash.score)
        return check

    def check(self, challenge: Challenge, capture: Capture) -> liveness_pb2.CheckResponse:
        """Liveness alone (no recognition): the flash calibration."""
        return self._checked(context.face_services().check(capture.frames, self._liveness_input(challenge, capture)))

    def verify(
        self,
        challenge: Challenge,
        capture: Capture,
        templates: Sequence[Sequence[float]],
        template_versions: Sequence[str],
    ) -> Decision:
        """Liveness ∥ recognition's Verify against ``templates``, then the decision (``decide_login``)."""
        config = context.settings()
        check, verify = context.face_services().check_and_verify(
            capture.frames, self._liveness_input(challenge, capture), templates
        )
        return decide_login(
            self._checked(check),
            verify,
            challenge_length=len(challenge.actions),
            flash_sent=bool(challenge.flash),
            min_matched_frames=config.min_matched_frames,
            template_model_versions=template_versions or [verify.model_version],
        )

    def encode(self, challenge: Challenge, capture: Capture) -> EnrollmentDecision:
        """Liveness ∥ recognition's Encode, then the decision (``decide_enrollment``)."""
        config = context.settings()
        check, encoded = context.face_services().check_and_encode(
            capture.frames, self._liveness_input(challenge, capture)
        )
        return decide_enrollment(
            self._checked(check),
            encoded,
            challenge_length=len(challenge.actions),
            flash_sent=bool(challenge.flash),
            min_faces=config.enroll_min_faces,
            min_quality=config.enroll_min_quality,
            max_templates=config.enroll_max_templates,
        )

    def record(self, subject: Subject, result: str, reason: str, scores: Scores | None = None) -> None:
        """The audit row (and log line, and metric) of this step under the purpose's event."""
        scores = scores or Scores()
        audit.record(
            self.purpose,
            result,
            reason,
            user_id=subject.user_id,
            claimed_username=subject.claimed,
            live_score=scores.live_score,
            match_distance=scores.match_distance,
            matched_frames=scores.matched_frames,
            details=scores.details or None,
        )

    @contextlib.contextmanager
    def audit_outage(self, subject: Subject) -> Iterator[None]:
        """A dependency that cannot answer is audited (result "error") before ``ServiceUnavailable`` goes on to
        become the 503."""
        try:
            yield
        except ServiceUnavailable as error:
            details = {"service": error.service, "code": error.code}
            self.record(subject, reasons.ERROR, reasons.SERVICE_UNAVAILABLE, Scores(details=details))
            raise


LOGIN = Ceremony(reasons.LOGIN)
ENROLLMENT = Ceremony(reasons.ENROLL)
FLASH_CALIBRATION = Ceremony(reasons.FLASH_CALIBRATION, with_actions=False, always_flash=True)
