"""Integration fixtures: a throwaway Postgres database, a Redis key prefix, the real gRPC services, real frames.

Everything heavy is session-scoped (database + migrations once, each service started once, frames decoded once)
so the tier stays within a few minutes on a busy 2-core machine.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from auth_web import create_app
from auth_web.accounts import hash_password, normalize_username
from auth_web.config import CaptureSettings, Settings
from auth_web.migrate import upgrade
from auth_web.models import AuditEvent, FaceTemplate, User
from auth_web.template_crypto import TemplateCipher, development_cipher
from conftest import REDIS_URL, GrpcTls, free_port, throwaway_database, throwaway_redis_prefix, wait_for_serving
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc
from faceauth.recognition.v1 import recognition_pb2, recognition_pb2_grpc

PASSWORD = "correct horse battery staple"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')

# Frames of person A: d9.mp4 (a man with glasses who blinks). Enrollment and login use different stretches,
# each containing a blink (found from the eye aspect ratio of the sampled frames: ~0.5 s and ~6.5 s).
VIDEO_A = "video/liveportrait/d9.mp4"
ENROLL_A_START_S = 0.0
LOGIN_A_START_S = 6.0


# -- database and redis -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with throwaway_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    with throwaway_redis_prefix() as prefix:
        yield prefix


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture(scope="session")
def db_engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


# -- the real gRPC services ------------------------------------------------------------------------------


@dataclass
class RealServices:
    liveness: str
    recognition: str


@pytest.fixture(scope="session")
def real_services(tmp_path_factory: pytest.TempPathFactory, grpc_tls: GrpcTls) -> Iterator[RealServices]:
    """`python -m liveness_service` and `python -m recognition_service` on free ports, started once, with
    mutual TLS (the session's certificates)."""
    with started_services(tmp_path_factory, grpc_tls, LIVENESS_SPEC | RECOGNITION_SPEC) as addresses:
        yield RealServices(addresses["liveness_service"], addresses["recognition_service"])


@pytest.fixture(scope="session")
def liveness_without_flash(tmp_path_factory: pytest.TempPathFactory, grpc_tls: GrpcTls) -> Iterator[str]:
    """A second real liveness-service, with LIVENESS_CHECKS lacking `flash` (the AUTH_FLASH=false deployment)."""
    env = {"LIVENESS_CHECKS": "sanity,passive,active"}
    with started_services(tmp_path_factory, grpc_tls, LIVENESS_SPEC, env) as addresses:
        yield addresses["liveness_service"]


LIVENESS_SPEC = {"liveness_service": ("LIVENESS_LISTEN", "faceauth.liveness.v1.LivenessService")}
RECOGNITION_SPEC = {"recognition_service": ("RECOGNITION_LISTEN", "faceauth.recognition.v1.RecognitionService")}


@contextlib.contextmanager
def started_services(
    tmp_path_factory: pytest.TempPathFactory,
    grpc_tls: GrpcTls,
    specs: dict[str, tuple[str, str]],
    extra_env: dict[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """The services of ``specs`` (package: (listen variable, gRPC service)) started and serving; their addresses."""
    logs = tmp_path_factory.mktemp("service-logs")
    processes: dict[str, tuple[subprocess.Popen, str, Any]] = {}
    try:
        for package, (variable, _service) in specs.items():
            address = f"127.0.0.1:{free_port()}"
            log_file = open(logs / f"{package}.log", "w")  # noqa: SIM115 (closed below)
            process = subprocess.Popen(
                [sys.executable, "-m", package],
                env={**os.environ, **grpc_tls.env, variable: address, "LOG_LEVEL": "WARNING", **(extra_env or {})},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            processes[package] = (process, address, log_file)
        for package, (process, address, _log) in processes.items():
            try:
                wait_for_serving(address, specs[package][1], process, timeout=180, security=grpc_tls.client)
            except AssertionError as error:
                text = (logs / f"{package}.log").read_text()[-3000:]
                pytest.fail(f"{error}\n{text}")
        yield {package: address for package, (_process, address, _log) in processes.items()}
    finally:
        for process, _address, log_file in processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log_file.close()


# -- fake gRPC services for fault injection ---------------------------------------------------------------


class FakeLiveness(liveness_pb2_grpc.LivenessServiceServicer):
    """Says live (and, when a flash was sent, reflected); remembers the last request."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self.requests: list[liveness_pb2.CheckRequest] = []

    def Check(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.requests.append(request)
        time.sleep(self.delay)
        actions = [liveness_pb2.ActionResult(action=a, performed=True, frame_index=1) for a in request.challenge]
        response = liveness_pb2.CheckResponse(
            live=True, reason=liveness_pb2.LIVENESS_REASON_LIVE, live_score=0.99, actions=actions, model_version="fake"
        )
        if request.flash:
            response.flash.CopyFrom(
                liveness_pb2.FlashResult(
                    reflected=True, score=0.9, threshold=0.6, face_gain=0.1, background_ratio=0.1, lag_ms=60
                )
            )
        return response


class FakeRecognition(recognition_pb2_grpc.RecognitionServiceServicer):
    """Says every capture matches: only for tests where the point is that something ELSE must refuse."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0

    def Verify(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        time.sleep(self.delay)
        frames = [recognition_pb2.FrameMatch(distance=0.2, matched=True) for _ in request.frames]
        return recognition_pb2.VerifyResponse(
            match=True,
            reason=recognition_pb2.VERIFY_REASON_MATCH,
            frames=frames,
            matched_frames=len(frames),
            threshold=0.55,
            model_version="fake",
        )


@dataclass
class FakeServer:
    address: str
    server: grpc.Server
    liveness: FakeLiveness | None = None
    recognition: FakeRecognition | None = None


@pytest.fixture
def fake_grpc(grpc_tls: GrpcTls) -> Iterator[Callable[..., FakeServer]]:
    """Start in-process fake servicers (built from the generated base classes) on a free port, behind the same
    mutual TLS as the real services."""
    servers: list[grpc.Server] = []

    def start(liveness: FakeLiveness | None = None, recognition: FakeRecognition | None = None) -> FakeServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if liveness is not None:
            liveness_pb2_grpc.add_LivenessServiceServicer_to_server(liveness, server)
            health_servicer.set("faceauth.liveness.v1.LivenessService", health_pb2.HealthCheckResponse.SERVING)
        if recognition is not None:
            recognition_pb2_grpc.add_RecognitionServiceServicer_to_server(recognition, server)
            health_servicer.set("faceauth.recognition.v1.RecognitionService", health_pb2.HealthCheckResponse.SERVING)
        port = server.add_secure_port("127.0.0.1:0", grpc_tls.server().server_credentials())
        server.start()
        servers.append(server)
        return FakeServer(f"127.0.0.1:{port}", server, liveness, recognition)

    yield start
    for server in servers:
        server.stop(0)


@pytest.fixture
def fakes(fake_grpc: Callable[..., FakeServer]) -> FakeServer:
    """Fake liveness and recognition that accept every capture (a test file overrides it for other answers)."""
    return fake_grpc(liveness=FakeLiveness(), recognition=FakeRecognition())


@pytest.fixture
def app(make_app: Callable[..., Flask], fakes: FakeServer) -> Flask:
    """An app whose gRPC calls go to ``fakes``."""
    return make_app(liveness_target=fakes.address, recognition_target=fakes.address)


@pytest.fixture
def frames(frames_a_login: list[bytes]) -> list[bytes]:
    """Six login frames of person A: enough for a capture, quick to post."""
    return frames_a_login[:6]


def dead_address() -> str:
    """An address where nothing listens."""
    return f"127.0.0.1:{free_port()}"


# -- frames ---------------------------------------------------------------------------------------------


def sample_images(
    path: Path, start_s: float, count: int = 10, fps: float = 6.0, *, cover: bool = False
) -> list[np.ndarray]:
    """Decode an mp4 like the browser would capture it: `count` frames at `fps`, 640x480 BGR (letterboxed, or
    with ``cover`` scaled to fill the frame and centre-cropped, as a webcam fills it)."""
    capture = cv2.VideoCapture(str(path))
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    wanted = [round((start_s + i / fps) * source_fps) for i in range(count)]
    images: list[np.ndarray] = []
    index = 0
    while len(images) < count:
        ok, image = capture.read()
        if not ok:
            break
        # A frame is repeated when two wanted times round to one source frame (fps close to the source's).
        framed = _cover(image) if cover else _letterbox(image)
        images.extend(framed for _ in range(wanted.count(index)))
        index += 1
    capture.release()
    assert len(images) == count, f"{path} has too few frames from {start_s}s"
    return images


def sample_frames(path: Path, start_s: float, count: int = 10, fps: float = 6.0) -> list[bytes]:
    """`sample_images` as the JPEGs the page posts."""
    return [_jpeg(image) for image in sample_images(path, start_s, count, fps)]


def _letterbox(image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def _cover(image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    scale = max(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


def _jpeg(image_bgr: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return encoded.tobytes()


@dataclass(frozen=True)
class Clip:
    """A stretch of a real video, filmed for each challenge by the ``Camera`` (as many frames as it asks for)."""

    path: Path
    start_s: float


@dataclass(frozen=True)
class Shot:
    """What the page posts for one challenge: the frames, their times and when the first colour was painted."""

    frames: list[bytes]
    times: list[int]
    flash_start_ms: int | None


class Camera:
    """Films a ``Clip`` the way the capture page would for a challenge: ``capture.frames`` at ``capture.fps``, and,
    when the challenge has a flash, the screen's light on the face — liveness-service's reflection simulator
    (``liveness_service.tools.reflection.relight``, seeded) applied to the real frames for the challenge's own
    sequence, starting with the first frame. A real face in front of the page is lit like this; a recording made
    before the challenge, or for another challenge's colours, is not."""

    #: A dim screen in a lit room (the simulator draws 0.08–0.5; from 0.3 on, sanity's colour-continuity check
    #: reads the flash as a cut), a typical webcam delay, mild white balance. With these, liveness passed 46 of 48
    #: random sequences on the d9 stretches used here (the other two: TRACK_DISCONTINUOUS, FLASH_NOT_REFLECTED).
    STRENGTH = 0.22
    DELAY_MS = 60.0
    WHITE_BALANCE = 0.1

    def __init__(self) -> None:
        self._analyzer: Any = None
        self._seen: dict[tuple[str, float, int, float], tuple[list[np.ndarray], list[Any]]] = {}

    def _film(self, clip: Clip, count: int, fps: float) -> tuple[list[np.ndarray], list[Any]]:
        """RGB frames of the clip and their 68 landmarks (None without a face), measured once per framing."""
        key = (str(clip.path), clip.start_s, count, fps)
        if key not in self._seen:
            if self._analyzer is None:
                from liveness_service.faces import FaceAnalyzer

                self._analyzer = FaceAnalyzer()
            sampled = sample_images(clip.path, clip.start_s, count, fps, cover=True)
            images = [image[:, :, ::-1].copy() for image in sampled]
            landmarks = [self._analyzer.observe(image).landmarks for image in images]
            self._seen[key] = (images, landmarks)
        return self._seen[key]

    def shoot(self, clip: Clip, challenge: dict[str, Any], *, reflect: bool = True, seed: int = 0) -> Shot:
        from liveness_service.flash import FlashStep
        from liveness_service.tools import reflection

        count, fps = int(challenge["capture"]["frames"]), float(challenge["capture"]["fps"])
        images, landmarks = self._film(clip, count, fps)
        times = [round(index * 1000 / fps) for index in range(count)]
        flash = challenge.get("flash")
        if flash is None:
            return Shot([_jpeg(image[:, :, ::-1]) for image in images], times, None)
        if reflect:
            steps = [FlashStep(int(step["colour"][1:], 16), int(step["duration_ms"])) for step in flash["steps"]]
            rng = np.random.default_rng(seed)
            model = reflection.ReflectionModel.draw(
                rng, strength=self.STRENGTH, delay_ms=self.DELAY_MS, white_balance=self.WHITE_BALANCE
            )
            images = reflection.relight(images, landmarks, steps, 0.0, times, rng, model)
        return Shot(reflection.encode_jpeg(images), times, 0)


CAMERA = Camera()
#: Genuine captures a test whose subject is a sign-in may take, like a user trying again: liveness refuses a few per
#: cent of the simulator's genuine captures (``Camera``), and two refusals in a row would be a real regression.
GENUINE_TRIES = 2


FRAME_TIMES = [round(i * 1000 / 6) for i in range(10)]


@pytest.fixture(scope="session")
def frames_a_enroll(test_data: Path) -> list[bytes]:
    return sample_frames(test_data / VIDEO_A, ENROLL_A_START_S)


@pytest.fixture(scope="session")
def frames_a_login(test_data: Path) -> list[bytes]:
    return sample_frames(test_data / VIDEO_A, LOGIN_A_START_S)


@pytest.fixture(scope="session")
def clip_a_enroll(test_data: Path) -> Clip:
    return Clip(test_data / VIDEO_A, ENROLL_A_START_S)


@pytest.fixture(scope="session")
def clip_a_login(test_data: Path) -> Clip:
    return Clip(test_data / VIDEO_A, LOGIN_A_START_S)


@pytest.fixture(scope="session")
def frames_a_static(frames_a_login: list[bytes]) -> list[bytes]:
    """A still image sent as a video: one frame of A repeated."""
    return [frames_a_login[0]] * len(frames_a_login)


# -- apps and clients -------------------------------------------------------------------------------------

_app_counter = itertools.count()


@pytest.fixture(scope="session")
def base_settings(database_url: str, redis_prefix: str, grpc_tls: GrpcTls) -> Settings:
    return Settings(
        secret_key="integration-test-secret-key-0123456789",
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        grpc_security=grpc_tls.client,
        liveness_target=dead_address(),
        recognition_target=dead_address(),
        liveness_deadline_seconds=60.0,
        recognition_deadline_seconds=60.0,
        challenge_actions=("BLINK",),
        challenge_length=1,
        capture=CaptureSettings(placement_wait_ms=500),
        rate_limit_login_per_address="1000/minute",
        rate_limit_login_per_username="1000/minute",
        rate_limit_register_per_address="1000/minute",
        rate_limit_enroll_per_user="1000/minute",
        # Failed logins neither delay nor lock unless a test says so (test_abuse.py does).
        lockout_threshold=1000,
        lockout_address_threshold=1000,
        throttle_free_attempts=1000,
        throttle_address_free_attempts=1000,
        throttle_username_free_attempts=1000,
    )


@pytest.fixture
def make_app(base_settings: Settings) -> Callable[..., Flask]:
    """An app with some settings changed; each gets its own Redis sub-prefix (own sessions, limits)."""

    def build(**changes: Any) -> Flask:
        prefix = f"{base_settings.redis_prefix}app{next(_app_counter)}:"
        settings = base_settings.replace(redis_prefix=prefix, **changes)
        app = create_app(settings)
        app.config["TESTING"] = True
        return app

    return build


def unique_username(stem: str = "user") -> str:
    return f"{stem}{secrets.token_hex(4)}"


@dataclass
class Browser:
    """A test client that behaves like the capture page: CSRF header, challenge, multipart frames.

    ``frames`` are either fixed JPEGs (posted as they are) or a ``Clip``, which the ``Camera`` films for the
    challenge (its frame count, rate and flash colours). Before posting, the challenge is aged by the time the
    page would have taken (placing the face, flash notice, capture) — moving its stored issue time back, instead of
    sleeping — unless ``elapsed`` says how long (0: posted at once).
    """

    client: FlaskClient
    csrf: str = ""
    history: list[Any] = field(default_factory=list)
    issued: dict[str, dict[str, Any]] = field(default_factory=dict)  # challenge bodies by nonce

    def refresh_csrf(self, path: str = "/login") -> str:
        page = self.client.get(path)
        match = CSRF_META.search(page.get_data(as_text=True))
        assert match, f"no CSRF token on {path} ({page.status_code})"
        self.csrf = match.group(1)
        return self.csrf

    def post_json(self, path: str, payload: dict[str, Any]):  # type: ignore[no-untyped-def]
        response = self.client.post(path, json=payload, headers={"X-CSRFToken": self.csrf})
        body = response.get_json(silent=True)
        if response.status_code == 200 and isinstance(body, dict) and "nonce" in body:
            self.issued[body["nonce"]] = body
        return response

    def challenge(self, username: str) -> dict[str, Any]:
        response = self.post_json("/api/login/challenge", {"username": username})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def page_seconds(self, nonce: str) -> float:
        """How long the page takes from the challenge to the POST: the face placed, flash notice, capture."""
        body = self.issued[nonce]
        capture = body["capture"]
        notice = body["flash"]["notice_ms"] / 1000 if body.get("flash") else 0.0
        return capture["placement_wait_ms"] / 1000 + notice + capture["frames"] / capture["fps"]

    def age_challenge(self, nonce: str, seconds: float) -> None:
        """Make the stored challenge ``seconds`` old (as if that much time had passed since it was issued). The time
        the test itself already spent since the challenge counts: filming a Clip (landmarks and relighting) takes
        seconds on a busy machine, and adding the page's time on top of it made genuine captures CHALLENGE_LATE."""
        from auth_web import context

        with self.client.application.app_context():
            store = context.challenges()
            key = store.prefix + nonce
            raw = store.client.get(key)
            if raw is None:
                return
            payload = json.loads(raw)
            already = store.clock() - float(payload["issued_at"])
            payload["issued_at"] -= max(0.0, seconds - already)
            store.client.set(key, json.dumps(payload), keepttl=True)

    def shoot(self, nonce: str, frames: list[bytes] | Clip, **camera: Any) -> Shot:
        """What the page would post for the challenge of ``nonce``."""
        body = self.issued.get(nonce)
        if isinstance(frames, Clip):
            assert body is not None, "a Clip is filmed for a challenge this browser was issued"
            return CAMERA.shoot(frames, body, **camera)
        flash_start = 0 if body is not None and body.get("flash") else None
        return Shot(list(frames), FRAME_TIMES[: len(frames)], flash_start)

    def submit(
        self,
        path: str,
        nonce: str,
        frames: list[bytes] | Clip | Shot,
        password: str | None = None,
        times: list[int] | None = None,
        *,
        flash_start_ms: int | str | None = None,
        elapsed: float | None = None,
    ):  # type: ignore[no-untyped-def]
        import io

        shot = frames if isinstance(frames, Shot) else self.shoot(nonce, frames)
        if nonce in self.issued:
            self.age_challenge(nonce, self.page_seconds(nonce) if elapsed is None else elapsed)
        data: dict[str, Any] = {
            "nonce": nonce,
            "frame_times_ms": json.dumps(times if times is not None else shot.times),
            "frames": [(io.BytesIO(frame), f"frame-{i}.jpg", "image/jpeg") for i, frame in enumerate(shot.frames)],
        }
        start = flash_start_ms if flash_start_ms is not None else shot.flash_start_ms
        if start is not None:
            data["flash_start_ms"] = str(start)
        if password is not None:
            data["password"] = password
        return self.client.post(path, data=data, headers={"X-CSRFToken": self.csrf}, content_type="multipart/form-data")

    def login(self, username: str, frames: list[bytes] | Clip, password: str | None = PASSWORD, **options: Any):  # type: ignore[no-untyped-def]
        """As the page does it: the password step first (when one is given), then the face step; a refused
        password step or challenge is returned as it is (no camera, no capture)."""
        self.refresh_csrf()
        if password is not None:
            checked = self.post_json("/api/login/password", {"username": username, "password": password})
            if checked.status_code != 200:
                return checked
        issued = self.post_json("/api/login/challenge", {"username": username})
        if issued.status_code != 200:
            return issued
        return self.submit("/api/login", issued.get_json()["nonce"], frames, **options)

    def login_with_password_in_capture(  # type: ignore[no-untyped-def]
        self, username: str, frames: list[bytes] | Clip, password: str | None = PASSWORD, **options: Any
    ):
        """The API contract that sends the password with the capture (same password step, run with the face); a
        refused challenge is returned as it is."""
        self.refresh_csrf()
        issued = self.post_json("/api/login/challenge", {"username": username})
        if issued.status_code != 200:
            return issued
        return self.submit("/api/login", issued.get_json()["nonce"], frames, password, **options)

    def register(self, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
        self.refresh_csrf("/register")
        return self.client.post(
            "/register",
            data={"username": username, "password": password, "confirm": password, "csrf_token": self.csrf},
        )

    def enroll(self, frames: list[bytes] | Clip, **options: Any):  # type: ignore[no-untyped-def]
        self.refresh_csrf("/enroll")
        response = self.post_json("/api/enroll/challenge", {})
        assert response.status_code == 200, response.get_data(as_text=True)
        return self.submit("/api/enroll", response.get_json()["nonce"], frames, **options)

    def enroll_genuine(self, clip: Clip, tries: int = GENUINE_TRIES):  # type: ignore[no-untyped-def]
        """Enrollment as a test's setup (not its subject): like a user, try again once when liveness refused the
        genuine capture (a few per cent of random sequences with the simulator, see ``Camera``)."""
        for _ in range(tries):
            response = self.enroll(clip)
            if response.status_code != 422:
                break
        return response

    def signed_in_as(self) -> str | None:
        response = self.client.get("/account")
        if response.status_code != 200:
            return None
        match = re.search(r"<h1>Hello, ([^<]+)</h1>", response.get_data(as_text=True))
        return match.group(1) if match else None


@pytest.fixture
def browser_for() -> Callable[[Flask], Browser]:
    return lambda app: Browser(app.test_client())


def create_user(
    engine,
    username: str,
    *,
    password: str | None = PASSWORD,
    role: str = "user",  # type: ignore[no-untyped-def]
    templates: int = 0,
    model_version: str = "fake",
    cipher: TemplateCipher | None = None,
) -> int:
    """A user straight in the database (for tests whose subject is not registration/enrollment); templates are
    random vectors sealed like enrollment does, with ``cipher`` (default: the apps' development key)."""
    rng = np.random.default_rng()
    with Session(engine) as session:
        user = User(
            username=username,
            username_key=normalize_username(username),
            password_hash=hash_password(password) if password else None,
            role=role,
        )
        session.add(user)
        session.flush()
        for _ in range(templates):
            vector = rng.normal(size=128).astype(np.float32) * 0.1
            session.add(
                FaceTemplate.seal(
                    vector,
                    user_id=user.id,
                    model_version=model_version,
                    cipher=cipher or development_cipher(),
                    quality=0.9,
                )
            )
        session.commit()
        return user.id


def audit_rows(engine, claimed_username: str, event: str = "login") -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        statement = (
            select(AuditEvent)
            .where(AuditEvent.claimed_username == claimed_username, AuditEvent.event == event)
            .order_by(AuditEvent.id)
        )
        return list(session.scalars(statement))


def last_reason(engine, claimed_username: str, event: str = "login") -> str:  # type: ignore[no-untyped-def]
    rows = audit_rows(engine, claimed_username, event)
    assert rows, f"no {event} audit rows for {claimed_username}"
    return rows[-1].reason


def sign_in_directly(browser: Browser, user_id: int) -> None:
    """Put a user into the browser's session the way a successful login does (new id, then the user)."""
    with browser.client.session_transaction() as session:
        session.rotate()  # type: ignore[attr-defined]
        session.clear()
        session["user_id"] = user_id
        session["auth_time"] = int(time.time())  # a fresh ceremony, as sign_in records it
        session["amr"] = ["pwd", "face", "mfa"]


# Person B: d12.mp4 (another man), a stretch with a blink at ~5.4 s, so only the face differs.
VIDEO_B = "video/liveportrait/d12.mp4"
LOGIN_B_START_S = 4.8


@pytest.fixture(scope="session")
def frames_b(test_data: Path) -> list[bytes]:
    return sample_frames(test_data / VIDEO_B, LOGIN_B_START_S)


@pytest.fixture(scope="session")
def clip_b(test_data: Path) -> Clip:
    return Clip(test_data / VIDEO_B, LOGIN_B_START_S)


def max_audit_id(engine) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func

    with Session(engine) as session:
        return session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0


def reasons_since(engine, audit_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        statement = select(AuditEvent.reason).where(AuditEvent.id > audit_id).order_by(AuditEvent.id)
        return list(session.scalars(statement))
