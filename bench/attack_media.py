"""What the attack suite presents: genuine clip windows and the injected attacks made from them, at run time.

Everything is made from the licensed data in ``tests/data`` (the clips of ``tests/data/video`` and the photos
of ``tests/data/faces``), so anyone with the repository can regenerate it; every random choice comes from the
``numpy.random.Generator`` passed in, so a seed reproduces a run exactly.

A *presentation* is what a client posts: RGB frames (640×480, encoded as JPEG quality 85 when sent), their
capture times in milliseconds from the first, and the moment the flash started on that clock. Attacks are
made the way an attacker who owns the browser would: after the challenge is issued, knowing its actions and
its colour sequence (the page must show both), with the frames tailored to them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.frames import CAPTURE_HEIGHT, CAPTURE_WIDTH, load_clip
from liveness_service.challenge import BLINK, TURN_LEFT, TURN_RIGHT, ChallengeThresholds, judge_challenge
from liveness_service.faces import FaceAnalyzer
from liveness_service.landmarks import eye_aspect_ratio, head_yaw_degrees

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = REPO_ROOT / "tests" / "data"
CLIPS = {
    "d9": TEST_DATA / "video/liveportrait/d9.mp4",
    "d12": TEST_DATA / "video/liveportrait/d12.mp4",
    "d18": TEST_DATA / "video/liveportrait/d18.mp4",
    "retalking2": TEST_DATA / "video/retalking/2.mp4",
}
PHOTOS = {
    "obama": TEST_DATA / "faces/face_recognition_examples/examples/obama.jpg",
    "biden": TEST_DATA / "faces/face_recognition_examples/examples/biden.jpg",
}
CAPTURE_FPS = 10.0
INTERVAL_MS = 1000.0 / CAPTURE_FPS


@dataclass
class Presentation:
    frames: list[np.ndarray]  # RGB uint8, 640x480
    times_ms: list[int]
    actions: tuple[str, ...]  # the challenge it answers


@dataclass(frozen=True)
class Window:
    """``frames`` consecutive 10 fps frames of a clip from ``start`` and the actions they perform, in order."""

    clip: str
    start: int
    frames: int
    actions: tuple[str, ...]


def browser_times(count: int, rng: np.random.Generator) -> list[int]:
    """Capture times as a browser's timer gives them: 100 ms apart, each late by 0–12 ms."""
    return [round(k * INTERVAL_MS + (rng.uniform(0, 12) if k else 0)) for k in range(count)]


def to_rgb(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def portrait_frame(image_rgb: np.ndarray, analyzer: FaceAnalyzer) -> np.ndarray:
    """A 640x480 frame of a photo with its face about 200 px tall, as an injecting attacker would compose it: the
    photo is cropped around its (largest) face to 4:3 and scaled; edges it lacks are stretched."""
    scale = min(CAPTURE_WIDTH / image_rgb.shape[1], CAPTURE_HEIGHT / image_rgb.shape[0])
    small = cv2.resize(image_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    boxes = analyzer.detect(small)
    if not boxes:
        raise RuntimeError("no face in the photo")
    box = boxes[0]
    face = box.height / scale
    centre_x, centre_y = (box.left + box.right) / 2 / scale, (box.top + box.bottom) / 2 / scale
    height = face * CAPTURE_HEIGHT / 200.0
    width = height * CAPTURE_WIDTH / CAPTURE_HEIGHT
    left, top = round(centre_x - width / 2), round(centre_y - height / 2)
    pad = max(0, -left, -top, left + round(width) - image_rgb.shape[1], top + round(height) - image_rgb.shape[0])
    padded = cv2.copyMakeBorder(image_rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[top + pad : top + pad + round(height), left + pad : left + pad + round(width)]
    return cv2.resize(crop, (CAPTURE_WIDTH, CAPTURE_HEIGHT), interpolation=cv2.INTER_AREA)


class Media:
    """The clips at 10 fps (RGB), their per-frame landmarks, and portraits to make photo attacks from."""

    def __init__(self, analyzer: FaceAnalyzer | None = None) -> None:
        self.analyzer = analyzer or FaceAnalyzer()
        self._windows: dict[tuple[int, int], list[Window]] = {}
        self.clips: dict[str, list[np.ndarray]] = {
            name: [to_rgb(frame.jpeg) for frame in load_clip(str(path), fps=CAPTURE_FPS)]
            for name, path in CLIPS.items()
        }
        self.landmarks: dict[str, list[np.ndarray | None]] = {
            name: [self.analyzer.observe(image).landmarks for image in images] for name, images in self.clips.items()
        }
        # Portraits: a frontal, eyes-open frame of each clip and the two photos.
        self.portraits: dict[str, np.ndarray] = {}
        for name, images in self.clips.items():
            self.portraits[name] = images[self._frontal_index(name)]
        for name, path in PHOTOS.items():
            self.portraits[name] = portrait_frame(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), self.analyzer)

    def _frontal_index(self, clip: str) -> int:
        best, best_yaw = 0, 1e9
        for index, points in enumerate(self.landmarks[clip]):
            if points is None or eye_aspect_ratio(points) < 0.25:
                continue
            yaw = abs(head_yaw_degrees(points, CAPTURE_WIDTH, CAPTURE_HEIGHT))
            if yaw < best_yaw:
                best, best_yaw = index, yaw
        return best

    def windows(self, frames: int, stride: int = 5) -> list[Window]:
        """Every ``frames``-frame window (every ``stride`` frames) with the longest action sequence it performs
        (at most one blink and one turn, as the default challenge asks), judged like the service judges them."""
        if (frames, stride) in self._windows:
            return self._windows[frames, stride]
        out: list[Window] = []
        for clip, points in self.landmarks.items():
            ears = [None if p is None else eye_aspect_ratio(p) for p in points]
            yaws = [None if p is None else head_yaw_degrees(p, CAPTURE_WIDTH, CAPTURE_HEIGHT) for p in points]
            for start in range(0, len(points) - frames + 1, stride):
                window_ears, window_yaws = ears[start : start + frames], yaws[start : start + frames]
                out.append(Window(clip, start, frames, _best_actions(window_ears, window_yaws)))
        self._windows[frames, stride] = out
        return out

    def window_frames(self, window: Window) -> list[np.ndarray]:
        return [image.copy() for image in self.clips[window.clip][window.start : window.start + window.frames]]

    def matching_window(
        self,
        actions: Sequence[str],
        frames: int,
        rng: np.random.Generator,
        stride: int = 1,
        clips: Sequence[str] | None = None,
    ) -> Window | None:
        """A random window of the clips (or of ``clips``) that performs ``actions`` in order (what a replay attacker
        looks for)."""
        candidates = [
            w
            for w in self.windows(frames, stride)
            if _performs(w.actions, actions) and (clips is None or w.clip in clips)
        ]
        return candidates[int(rng.integers(len(candidates)))] if candidates else None


_CANDIDATES = (
    (BLINK, TURN_LEFT),
    (BLINK, TURN_RIGHT),
    (TURN_LEFT, BLINK),
    (TURN_RIGHT, BLINK),
    (BLINK,),
    (TURN_LEFT,),
    (TURN_RIGHT,),
)


def _best_actions(ears: list[float | None], yaws: list[float | None]) -> tuple[str, ...]:
    for actions in _CANDIDATES:
        if all(o.performed for o in judge_challenge(list(actions), ears, yaws, ChallengeThresholds())):
            return actions
    return ()


def _performs(done: tuple[str, ...], wanted: Sequence[str]) -> bool:
    return tuple(done[: len(wanted)]) == tuple(wanted) or tuple(done) == tuple(wanted)


# -- image operations an attacker applies ----------------------------------------------------------------


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def similarity_jitter(
    image: np.ndarray, dx: float, dy: float, degrees: float, scale: float, border: int = cv2.BORDER_REFLECT
) -> np.ndarray:
    """The photo moved like a hand holds it: shifted, rotated and scaled about the frame centre."""
    matrix = cv2.getRotationMatrix2D((CAPTURE_WIDTH / 2, CAPTURE_HEIGHT / 2), degrees, scale)
    matrix[:, 2] += (dx, dy)
    return cv2.warpAffine(image, matrix, (CAPTURE_WIDTH, CAPTURE_HEIGHT), borderMode=border)


def turn_photo(image: np.ndarray, degrees: float, centre_x: float, border: int) -> np.ndarray:
    """The photo rotated about a vertical axis through ``centre_x`` (a flat picture turned in front of a camera
    with a 640-pixel focal length, 60 cm away in units of the frame): a perspective warp."""
    focal = float(CAPTURE_WIDTH)
    distance = focal
    angle = math.radians(degrees)
    corners = np.array([[0, 0], [CAPTURE_WIDTH, 0], [CAPTURE_WIDTH, CAPTURE_HEIGHT], [0, CAPTURE_HEIGHT]], np.float32)
    projected = []
    for x, y in corners:
        offset = x - centre_x
        # Point on the plane after rotation about the y axis: x' = offset·cos, z' = offset·sin.
        px, pz = offset * math.cos(angle), distance + offset * math.sin(angle)
        projected.append((centre_x + focal * px / pz, CAPTURE_HEIGHT / 2 + focal * (y - CAPTURE_HEIGHT / 2) / pz))
    matrix = cv2.getPerspectiveTransform(corners, np.array(projected, np.float32))
    return cv2.warpPerspective(image, matrix, (CAPTURE_WIDTH, CAPTURE_HEIGHT), borderMode=border)


def paint_eyes_closed(image: np.ndarray, points: np.ndarray, lash: float = 10.0, lid: float = 1.4) -> np.ndarray:
    """Both eyes painted shut with the skin below them and a lash line along the lower lid (width/``lash`` thick),
    over an ellipse ``lid`` x the eye's height, feathered: a closed eye made in a photo editor."""
    out = image.astype(np.float32)
    for eye in (points[36:42], points[42:48]):
        centre = eye.mean(axis=0)
        width = float(np.ptp(eye[:, 0]))
        height = max(float(np.ptp(eye[:, 1])), width * 0.3)
        below = image[
            int(centre[1] + height * 1.5) : int(centre[1] + height * 3.0),
            int(centre[0] - width / 3) : int(centre[0] + width / 3),
        ]
        skin = below.reshape(-1, 3).mean(axis=0) if below.size else image[int(centre[1]), int(centre[0])]
        mask = np.zeros(image.shape[:2], np.float32)
        axes = (max(2, int(width * 0.7)), max(2, int(height * lid)))
        cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axes, 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, height / 3))[..., None]
        painted = np.empty_like(out)
        painted[:] = skin
        # The closed lid's lash line: from the outer to the inner corner, sagging to the lower lid.
        line = np.array([eye[0], eye[5], eye[4], eye[3]], np.int32)
        cv2.polylines(
            painted, [line], False, tuple(float(v) * 0.35 for v in skin), max(1, round(width / lash)), cv2.LINE_AA
        )
        out = out * (1 - mask) + painted * mask
    return np.clip(out, 0, 255).astype(np.uint8)


# -- attacks --------------------------------------------------------------------------------------------

BORDERS = {"mirrored": cv2.BORDER_REFLECT, "black": cv2.BORDER_CONSTANT}


def _turn_angle_profile(frames: int, turn_at: float, peak: float) -> list[float]:
    """0° until ``turn_at`` (fraction of the capture), then up to ``peak`` and back over the next 40 %."""
    out = []
    for k in range(frames):
        phase = (k / max(frames - 1, 1) - turn_at) / 0.4
        out.append(peak * math.sin(math.pi * phase) if 0 <= phase <= 1 else 0.0)
    return out


class Attacks:
    """Each method makes one attack presentation for a challenge (its actions), as described in bench/README.md."""

    def __init__(
        self, media: Media, portraits: Sequence[str] | None = None, clips: Sequence[str] | None = None
    ) -> None:
        """``portraits`` / ``clips``: restrict the material to these (e.g. the victim's own face); default all."""
        self.media = media
        self.portrait_names = list(portraits or media.portraits)
        self.clip_names = list(clips) if clips else None
        self._turn_sign: dict[str, float] = {}
        self._closed: dict[str, np.ndarray] = {}

    def _portrait(self, rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
        """A random portrait, and the same portrait with its eyes painted shut."""
        name = self.portrait_names[int(rng.integers(len(self.portrait_names)))]
        if name not in self._closed:
            image = self.media.portraits[name]
            points = self.media.analyzer.observe(image).landmarks
            if points is None:
                raise RuntimeError(f"no face found in the portrait {name}")
            # The attacker tries a few paint jobs with the same landmark model and keeps the most shut-looking.
            variants = [paint_eyes_closed(image, points, lash, lid) for lash in (10, 6, 4) for lid in (1.4, 2.0)]
            self._closed[name] = min(variants, key=lambda v: self._ear(v))
        return name, self.media.portraits[name], self._closed[name]

    def _ear(self, image: np.ndarray) -> float:
        points = self.media.analyzer.observe(image).landmarks
        return eye_aspect_ratio(points) if points is not None else 1.0

    def still(self, actions: Sequence[str], frames: int, rng: np.random.Generator) -> Presentation:
        _, image, _closed = self._portrait(rng)
        return Presentation([image.copy() for _ in range(frames)], browser_times(frames, rng), tuple(actions))

    def still_noise(self, actions: Sequence[str], frames: int, rng: np.random.Generator) -> Presentation:
        _, image, _closed = self._portrait(rng)
        sigma = float(rng.uniform(2.0, 5.0))
        images = [add_noise(image, sigma, rng) for _ in range(frames)]
        return Presentation(images, browser_times(frames, rng), tuple(actions))

    def handheld_jitter(self, actions: Sequence[str], frames: int, rng: np.random.Generator) -> Presentation:
        """±10 px, ±5°, ±3 % scale as a smooth random walk, plus noise; eyes painted closed when BLINK is asked."""
        _, image, closed_image = self._portrait(rng)
        walk = np.cumsum(rng.normal(0.0, 1.0, (frames, 4)), axis=0)
        walk = walk / max(float(np.abs(walk).max()), 1e-6)
        closed = self._blink_frames(actions, frames, rng)
        sigma = float(rng.uniform(1.0, 3.0))
        images = []
        for k in range(frames):
            source = closed_image if k in closed else image
            moved = similarity_jitter(source, 10 * walk[k, 0], 10 * walk[k, 1], 5 * walk[k, 2], 1 + 0.03 * walk[k, 3])
            images.append(add_noise(moved, sigma, rng))
        return Presentation(images, browser_times(frames, rng), tuple(actions))

    def perspective_turn(
        self, actions: Sequence[str], frames: int, rng: np.random.Generator, border: str = "mirrored"
    ) -> Presentation:
        """The photo turned about its vertical axis in each prompted direction (20–40°), the eyes painted closed
        for BLINK, each action in its own part of the capture in the challenge's order; plus noise."""
        name, image, closed_image = self._portrait(rng)
        box = self.media.analyzer.observe(image).box
        centre_x = (box.left + box.right) / 2 if box is not None else CAPTURE_WIDTH / 2
        angles = [0.0] * frames
        closed: set[int] = set()
        slots = max(len(actions), 1)
        for slot, action in enumerate(actions):
            begin = slot / slots
            if action == BLINK:
                first = int((begin + 0.15 / slots) * frames)
                closed |= set(range(first, min(first + 3, frames)))
            else:
                sign = self._sign_for(name, image, centre_x, action)
                part = _turn_angle_profile(frames, begin, sign * float(rng.uniform(20, 40)))
                span = range(int(begin * frames), int((slot + 1) / slots * frames))
                for k in span:
                    angles[k] = part[k] if k < len(part) else 0.0
        sigma = float(rng.uniform(1.0, 3.0))
        images = []
        for k in range(frames):
            source = closed_image if k in closed else image
            turned = turn_photo(source, angles[k], centre_x, BORDERS[border]) if angles[k] else source
            images.append(add_noise(turned, sigma, rng))
        return Presentation(images, browser_times(frames, rng), tuple(actions))

    def painted_blink(self, actions: Sequence[str], frames: int, rng: np.random.Generator) -> Presentation:
        """The 'Why' attack of issue 12: copies of one portrait, the eyes painted over in 4 frames, light noise
        (and, when the challenge also wants a turn, the photo turned for it)."""
        if any(a != BLINK for a in actions):
            return self.perspective_turn(actions, frames, rng)
        _, image, closed_image = self._portrait(rng)
        first = int(rng.integers(2, max(3, frames - 6)))
        closed = set(range(first, first + 4))
        sigma = float(rng.uniform(1.5, 3.0))
        images = [add_noise(closed_image if k in closed else image, sigma, rng) for k in range(frames)]
        return Presentation(images, browser_times(frames, rng), tuple(actions))

    def splice(self, actions: Sequence[str], frames: int, rng: np.random.Generator) -> Presentation:
        """A–B–A: a replayed window of person A with a stretch of person B in the middle."""
        a = self.media.matching_window(actions, frames, rng, clips=self.clip_names) or self._any_window(frames, rng)
        others = [name for name in self.media.clips if name != a.clip]
        b_clip = others[int(rng.integers(len(others)))]
        b_frames = self.media.clips[b_clip]
        images = self.media.window_frames(a)
        middle = range(frames // 3, 2 * frames // 3)
        offset = int(rng.integers(0, max(1, len(b_frames) - frames)))
        for k in middle:
            images[k] = b_frames[offset + k].copy()
        return Presentation(images, browser_times(frames, rng), tuple(actions))

    def replay(self, actions: Sequence[str], frames: int, rng: np.random.Generator) -> Presentation:
        """A recorded genuine clip: a window that performs the challenge when the clips have one."""
        window = self.media.matching_window(actions, frames, rng, clips=self.clip_names) or self._any_window(
            frames, rng
        )
        return Presentation(self.media.window_frames(window), browser_times(frames, rng), tuple(actions))

    def replay_forged_times(self, actions: Sequence[str], frames: int, rng: np.random.Generator) -> Presentation:
        """Frames picked from a longer stretch of a recording (so that it holds the actions), re-timed to look
        like one capture of the usual length."""
        stride = int(rng.integers(2, 4))
        long_window = self.media.matching_window(actions, frames * stride, rng, clips=self.clip_names)
        if long_window is None:
            return self.replay(actions, frames, rng)
        images = self.media.window_frames(long_window)[::stride][:frames]
        return Presentation(images, browser_times(len(images), rng), tuple(actions))

    def _any_window(self, frames: int, rng: np.random.Generator) -> Window:
        windows = self.media.windows(frames)
        return windows[int(rng.integers(len(windows)))]

    def _blink_frames(self, actions: Sequence[str], frames: int, rng: np.random.Generator) -> set[int]:
        if BLINK not in actions:
            return set()
        first = int(rng.integers(2, max(3, frames - 5)))
        return set(range(first, first + 3))

    def _sign_for(self, name: str, image: np.ndarray, centre_x: float, action: str) -> float:
        """The turn direction that dlib reads as ``action`` on this portrait (the attacker tries it out once)."""
        if name not in self._turn_sign:
            turned = turn_photo(image, 30.0, centre_x, cv2.BORDER_REFLECT)
            points = self.media.analyzer.observe(turned).landmarks
            yaw = head_yaw_degrees(points, CAPTURE_WIDTH, CAPTURE_HEIGHT) if points is not None else 1.0
            self._turn_sign[name] = 1.0 if yaw > 0 else -1.0  # +yaw = the user's own left
        left = self._turn_sign[name]
        return left if action == TURN_LEFT else -left
