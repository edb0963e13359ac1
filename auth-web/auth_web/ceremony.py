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
from auth_web.challenges import Challenge, random_actions
from auth_web.decision import Decision, EnrollmentDecision, decide_enrollment, decide_login
from auth_web.face_services import ServiceUnavailable
from auth_web.uploads import parse_frame_times, read_frames
from faceauth_common.imaging import ImageLimits


class Refusal(enum.StrEnum):
    """What the client is told when a step is refused (the JSON ``error``); the audit's reason stays apart."""

    BAD_REQUEST = "bad_request"
    BAD_USERNAME = "bad_username"
    CHALLENGE_INVALID = "challenge_invalid"
    RATE_LIMITED = "rate_limited"
    LOGIN_FAILED = "login_failed"
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
    retry_after: int | None = None  # seconds, for RATE_LIMITED


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
    """The checked frames of one capture and their times (ms since the first)."""

    frames: list[bytes]
    frame_times: list[int]


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


@dataclass(frozen=True)
class Ceremony:
    """The ceremony for one purpose; ``purpose`` names both the challenge's purpose and the audit event."""

    purpose: str

    def issue(self, *, username: str = "", user_id: int | None = None) -> Challenge:
        """A new challenge for this browser session: ``challenge_length`` random actions, single use."""
        config = context.settings()
        actions = random_actions(config.challenge_actions, config.challenge_length)
        return context.challenges().issue(
            self.purpose, actions, context.browser_session().hash, username=username, user_id=user_id
        )

    def consume(self, nonce: str) -> tuple[Challenge | None, str]:
        """The challenge of ``nonce`` taken out of the store, or None and the audit reason it is unusable for."""
        return context.challenges().consume(nonce, self.purpose, context.browser_session().hash)

    def read_capture(self, files: list[FileStorage], frame_times_raw: str | None) -> Capture:
        """The uploaded frames within the settings' caps (``CaptureError`` when they are not)."""
        config = context.settings()
        limits = ImageLimits(config.max_frame_bytes, config.max_frame_pixels, config.max_frames)
        frames = read_frames(files, min_frames=config.min_frames, max_frames=config.max_frames, limits=limits)
        return Capture(frames, parse_frame_times(frame_times_raw, len(frames)))

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
            capture.frames, challenge.actions, capture.frame_times, templates
        )
        return decide_login(
            check,
            verify,
            challenge_length=len(challenge.actions),
            min_matched_frames=config.min_matched_frames,
            template_model_versions=template_versions or [verify.model_version],
        )

    def encode(self, challenge: Challenge, capture: Capture) -> EnrollmentDecision:
        """Liveness ∥ recognition's Encode, then the decision (``decide_enrollment``)."""
        config = context.settings()
        check, encoded = context.face_services().check_and_encode(
            capture.frames, challenge.actions, capture.frame_times
        )
        return decide_enrollment(
            check,
            encoded,
            challenge_length=len(challenge.actions),
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
