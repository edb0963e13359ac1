"""Face boxes and 68-point landmarks per frame (dlib HOG + shape predictor); numpy in, numpy out."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from faceauth_common.boxes import Box, downscale_factor
from faceauth_common.metrics import observe_stage
from faceauth_common.threadsafe import InstancePool


@dataclass(frozen=True)
class FaceObservation:
    """What the detector saw in one frame: every comparable face, the chosen one and its landmarks."""

    face_count: int
    box: Box | None  # clipped to the frame
    landmarks: np.ndarray | None  # (68, 2) float32 in frame pixels
    # As the detector found it: past the frame's edges when the face is cut by them (a face at the border, a face
    # filling the frame). Landmarks and the passive model's context crops use this one, so a cut face keeps its
    # centre and size instead of a box squeezed to the visible part.
    detected_box: Box | None = None


class FaceAnalyzer:
    """HOG detection on a downscaled grey frame, landmarks on the full-resolution frame.

    No dlib object may be used by two threads at once (a shared HOG detector segfaults). HOG
    releases the GIL, so there is one detector per server thread and threads detect in parallel;
    the landmark predictor holds the GIL, so one instance behind a lock costs no parallelism.
    """

    def __init__(self, detect_max_side: int = 320, min_face_ratio: float = 0.25, threads: int = 1) -> None:
        import dlib
        import face_recognition_models

        self._detectors = InstancePool.of_copies(dlib.get_frontal_face_detector(), threads)
        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self._dlib = dlib
        self._predictor_lock = threading.Lock()
        self.detect_max_side = detect_max_side
        # A second detection smaller than this fraction of the largest face's area is ignored
        # (HOG false positives on round logos, faces far in the background).
        self.min_face_ratio = min_face_ratio

    def detect(self, image_rgb: np.ndarray) -> list[Box]:
        """Face boxes in full-frame pixels, largest first; retries at full resolution when the small pass finds none.

        A box may reach past the frame (dlib finds faces cut by an edge, up to about a third of them); ``observe``
        gives both it and the box clipped to the frame."""
        grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        height, width = grey.shape
        scale = downscale_factor(width, height, self.detect_max_side)
        boxes: list[Box] = []
        attempts = [scale] if scale == 1.0 else [scale, min(1.0, scale * 2)]
        for attempt in attempts:
            small = (
                grey if attempt == 1.0 else cv2.resize(grey, None, fx=attempt, fy=attempt, interpolation=cv2.INTER_AREA)
            )
            with self._detectors.borrow() as detector:
                rects = detector(small, 0)
            # Rounded to the nearest pixel (not Box.from_scaled's outward rounding): the yaw and
            # blink thresholds were calibrated on these boxes.
            boxes = [
                Box(
                    round(r.left() / attempt),
                    round(r.top() / attempt),
                    round(r.right() / attempt),
                    round(r.bottom() / attempt),
                )
                for r in rects
            ]
            if boxes:
                break
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def landmarks(self, image_rgb: np.ndarray, box: Box) -> np.ndarray:
        rect = self._dlib.rectangle(box.left, box.top, box.right, box.bottom)
        with self._predictor_lock:
            shape = self._predictor(image_rgb, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def observe(self, image_rgb: np.ndarray, with_landmarks: bool = True) -> FaceObservation:
        with observe_stage("detection"):
            boxes = self.detect(image_rgb)
        if not boxes:
            return FaceObservation(0, None, None)
        height, width = image_rgb.shape[:2]
        clipped = [clip_box(b, width, height) for b in boxes]
        largest = max(range(len(boxes)), key=lambda i: clipped[i].area)
        comparable = [b for b in clipped if b.area >= self.min_face_ratio * clipped[largest].area]
        points = None
        if with_landmarks:
            with observe_stage("landmarks"):
                points = self.landmarks(image_rgb, boxes[largest])
        return FaceObservation(len(comparable), clipped[largest], points, boxes[largest])


def clip_box(box: Box, width: int, height: int) -> Box:
    return Box(max(0, box.left), max(0, box.top), min(width, box.right), min(height, box.bottom))


def crop_with_context(image: np.ndarray, box: Box, scale: float, size: int) -> np.ndarray:
    """The face box scaled about its centre (limited to fit, shifted inside the image), resized to size x size.

    Same geometry as Silent-Face-Anti-Spoofing's CropImage, so the MiniFASNet weights see what they were
    trained on; the context around the face carries the attack cues (paper edges, bezels, moiré). Where the scaled
    box would reach past the frame (a close face, a face at the border; at 4.0x most faces), the reference does not
    pad: it lowers the scale until the box fits and shifts it inside, so the crop never fails and never shows
    padding the model was not trained on. ``box`` may itself reach past the frame (a face cut by an edge).
    """
    src_h, src_w = image.shape[:2]
    box_w, box_h = max(box.width, 1), max(box.height, 1)
    scale = min((src_h - 1) / box_h, (src_w - 1) / box_w, scale)
    new_w, new_h = box_w * scale, box_h * scale
    centre_x, centre_y = box.left + box_w / 2, box.top + box_h / 2
    left, top = centre_x - new_w / 2, centre_y - new_h / 2
    right, bottom = centre_x + new_w / 2, centre_y + new_h / 2
    if left < 0:
        right -= left
        left = 0
    if top < 0:
        bottom -= top
        top = 0
    if right > src_w - 1:
        left -= right - src_w + 1
        right = src_w - 1
    if bottom > src_h - 1:
        top -= bottom - src_h + 1
        bottom = src_h - 1
    region = image[int(top) : int(bottom) + 1, int(left) : int(right) + 1]
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR)
