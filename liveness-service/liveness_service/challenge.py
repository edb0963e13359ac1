"""Active challenge: did the requested actions happen, in order, within the capture? (no grpc, no models)"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLINK = "BLINK"
TURN_LEFT = "TURN_LEFT"
TURN_RIGHT = "TURN_RIGHT"
ACTIONS = (BLINK, TURN_LEFT, TURN_RIGHT)


@dataclass(frozen=True)
class ChallengeThresholds:
    # A frame is "eyes closed" when its eye aspect ratio is at most blink_ratio x the capture's open-eye
    # level (75th percentile of the capture's EARs); relative, so narrow eyes and glasses still work.
    blink_ratio: float = 0.7
    # The open-eye level must reach this, else the landmarks are not trustworthy enough to judge a blink.
    min_open_ear: float = 0.18
    # Head yaw (degrees, + = the user's left) a turn must reach, measured against the capture's starting pose
    # (median yaw of the frames before the turn is searched) and in absolute terms.
    turn_degrees: float = 15.0


@dataclass(frozen=True)
class ActionOutcome:
    action: str
    performed: bool
    frame_index: int  # -1 when not performed


def judge_challenge(
    actions: list[str], ears: list[float | None], yaws: list[float | None], thresholds: ChallengeThresholds
) -> list[ActionOutcome]:
    """Each action must be found strictly after the frame where the previous one was completed."""
    valid_ears = np.array([e for e in ears if e is not None], dtype=np.float64)
    open_level = float(np.percentile(valid_ears, 75)) if len(valid_ears) else 0.0
    outcomes: list[ActionOutcome] = []
    start = 0
    failed = False
    for action in actions:
        found = -1
        if not failed:
            found = _find(action, start, ears, yaws, open_level, thresholds)
        if found < 0:
            failed = True  # later actions cannot be "in order" once one is missing
            outcomes.append(ActionOutcome(action, False, -1))
        else:
            outcomes.append(ActionOutcome(action, True, found))
            start = found + 1
    return outcomes


def _find(
    action: str,
    start: int,
    ears: list[float | None],
    yaws: list[float | None],
    open_level: float,
    thresholds: ChallengeThresholds,
) -> int:
    if action == BLINK:
        if open_level < thresholds.min_open_ear:
            return -1
        closed_at = thresholds.blink_ratio * open_level
        for index in range(start, len(ears)):
            ear = ears[index]
            if ear is not None and ear <= closed_at:
                return index
        return -1
    if action in (TURN_LEFT, TURN_RIGHT):
        sign = 1.0 if action == TURN_LEFT else -1.0
        reference = [y for y in yaws[: max(start, 1)] if y is not None and not math.isnan(y)]
        baseline = float(np.median(reference)) if reference else 0.0
        for index in range(start, len(yaws)):
            yaw = yaws[index]
            if yaw is None or math.isnan(yaw):
                continue
            turned = sign * yaw
            if turned >= thresholds.turn_degrees and turned - sign * baseline >= thresholds.turn_degrees:
                return index
        return -1
    raise ValueError(f"unknown action {action!r}")
