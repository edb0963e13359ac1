"""Which face of an image is the one to use, and when a second face makes the image unusable.

Two rule sets. Live capture (login frames, camera enrollment): the largest face, refused as
``MULTIPLE_FACES`` when another face has at least ``QualitySettings.multiple_face_ratio`` of its area.
Photo mode (imported photos: ``Encode`` with ``ENCODE_MODE_PHOTO``, the operator CLI): the *dominant* face,
the most prominent of the faces in focus, used when every other face in focus is clearly less prominent;
prominence is the box area weighted by closeness to the image centre, because a photo of a person frames
that person (measured on LFW: the background faces next to the subject are 0.48-0.59 of its area and
off-centre; the faces of group photos are 0.69-1.0 of each other's area, at similar distances from the
centre). Numpy in, indices out; no dlib here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from faceauth_common.boxes import Box


@dataclass(frozen=True)
class PhotoSettings:
    # Another face in focus whose prominence is at least this fraction of the chosen face's: the photo
    # shows two people and is refused (MULTIPLE_FACES).
    dominant_ratio: float = 0.5
    # A face whose sharpness is below this fraction of the sharpest face's is out of focus and ignored.
    out_of_focus_ratio: float = 0.1
    # Detection retries with up to this many upsampling steps when no face is found.
    max_upsample: int = 2
    # The refusal limits of photo mode (measured: below them the embedding drifts > 0.25-0.4 from the
    # same face's undegraded embedding; recognition-service/README.md, "Photo mode").
    min_face_px: int = 40
    min_sharpness: float = 6.0
    min_brightness: float = 20.0


@dataclass(frozen=True)
class Choice:
    """The face to use (index into the detections), or a refusal when ``ambiguous``."""

    index: int
    ambiguous: bool
    # Faces left out because they were out of focus or clearly less prominent (photo mode only).
    ignored: int = 0


def centrality(box: Box, width: int, height: int) -> float:
    """1 at the image centre, 0.5 in a corner: 1 - 0.5 * distance from the centre / half the diagonal."""
    centre_x, centre_y = box.centre
    half_diagonal = math.hypot(width, height) / 2 or 1.0
    distance = math.hypot(centre_x - width / 2, centre_y - height / 2)
    return 1.0 - 0.5 * min(1.0, distance / half_diagonal)


def prominence(box: Box, width: int, height: int) -> float:
    return box.area * centrality(box, width, height)


def choose_live(boxes: Sequence[Box], multiple_face_ratio: float) -> Choice:
    """The largest face; ambiguous when another has >= ``multiple_face_ratio`` of its area."""
    if not boxes:
        raise ValueError("no faces to choose from")
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].area, reverse=True)
    largest = order[0]
    ambiguous = len(order) > 1 and boxes[order[1]].area >= multiple_face_ratio * boxes[largest].area
    return Choice(largest, ambiguous)


def choose_photo(
    boxes: Sequence[Box], sharpness: Sequence[float], width: int, height: int, settings: PhotoSettings
) -> Choice:
    """The dominant face of a photo: the most prominent face in focus; ambiguous when another face in
    focus has at least ``settings.dominant_ratio`` of its prominence."""
    if not boxes:
        raise ValueError("no faces to choose from")
    if len(boxes) != len(sharpness):
        raise ValueError("one sharpness value per face is needed")
    sharpest = max(sharpness)
    in_focus = [i for i in range(len(boxes)) if sharpness[i] >= settings.out_of_focus_ratio * sharpest]
    scores = {i: prominence(boxes[i], width, height) for i in in_focus}
    order = sorted(in_focus, key=lambda i: scores[i], reverse=True)
    chosen = order[0]
    rivals = [i for i in order[1:] if scores[i] >= settings.dominant_ratio * scores[chosen]]
    return Choice(chosen, ambiguous=bool(rivals), ignored=len(boxes) - 1 - len(rivals))
