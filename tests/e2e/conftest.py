"""Fixtures of the browser tests: the whole stack (once per session), camera files, Chromium, the database and Redis.

Run alone with ``make test-e2e`` (see tests/e2e/README.md). Screenshots and the stack's log go to test-output/e2e/.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from auth_web.accounts import hash_password, normalize_username
from auth_web.models import AuditEvent, FaceTemplate, User
from auth_web.template_crypto import development_cipher
from conftest import REPO_ROOT

from .browser import Browser, chromium_available
from .media import Clip
from .relight import REFLECTION_STRENGTH, FaceRegion, face_region, relight_script
from .stack import REDIS_URL, Stack

OUTPUT = REPO_ROOT / "test-output" / "e2e"
PASSWORD = "correct horse battery staple"

# The challenge each video really contains (see the clips below): the stack starts with BLINK; the scenario whose
# point is a missing action restarts auth-web with TURN_LEFT, which no A clip contains.
STACK_SETTINGS = {
    "AUTH_CHALLENGE_ACTIONS": "BLINK",
    "AUTH_CHALLENGE_LENGTH": "1",
    # Every browser comes from 127.0.0.1 and every issued challenge counts as a failure until its attempt settles it
    # (a camera problem leaves it unsettled): over the whole tier that address would be slowed down, rate-limited and
    # then locked. Throttling and rate limits are the integration tier's subject
    # (auth-web/tests/integration/test_abuse.py), not this one's.
    "AUTH_THROTTLE_FREE_ATTEMPTS": "1000",
    "AUTH_THROTTLE_ADDRESS_FREE_ATTEMPTS": "1000",
    "AUTH_LOCKOUT_THRESHOLD": "1000",
    "AUTH_LOCKOUT_ADDRESS_THRESHOLD": "5000",
    "AUTH_RATE_LIMIT_LOGIN_PER_ADDRESS": "1000/minute",
    # The gateway's own per-address limit on /login and /api/login* (30 a minute by default): a sign-in is four
    # such requests, and a fast machine runs more than seven a minute (tests/integration/test_gateway.py owns it).
    "GATEWAY_LOGIN_RATE": "6000r/m",
    "GATEWAY_LOGIN_BURST": "1000",
}

# Camera clips. Frame numbers come from the eye aspect ratio and head yaw of every frame, measured with the
# liveness service's own landmarks (eyes closed: EAR <= ~0.2 against ~0.27-0.30 open; yaw + = the user's left).
# Played ping-pong, every capture window (15 frames at 10 fps: 1.4 s) contains at least one whole blink: the longest
# stretch from one blink's start to the next one's end is 33 video frames of d9 at 30 fps (1.1 s), 23 of d12 at 25 fps.
CLIPS = {
    # Person A (d9.mp4, a man with glasses): blinks at frames 11-17 and 36-45; yaw -10..-2 (frontal).
    "a_enroll": Clip("a_enroll", "video/liveportrait/d9.mp4", 0, 50),
    # Person A again, another stretch: blinks at 363-371 and 380-391; yaw -11..-3, so never a turn to the left.
    "a_login": Clip("a_login", "video/liveportrait/d9.mp4", 355, 395),
    # A photo of A held still: one open-eyed frame of the login stretch, repeated.
    "a_still": Clip("a_still", "video/liveportrait/d9.mp4", 360, 360, still=True),
    # Person B (d12.mp4, another man): a blink at frames 134-138 (EAR 0.13-0.22 against ~0.33 open).
    "b_login": Clip("b_login", "video/liveportrait/d12.mp4", 126, 146),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = chromium_available()
    if missing:
        for item in items:
            if "e2e" in Path(str(item.fspath)).parts:
                item.add_marker(pytest.mark.skip(reason=missing))


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def stack(output_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """liveness, recognition, auth-web and the nginx gateway on free ports, with a throwaway database."""
    stack = Stack(output_dir / "stack.log", tmp_path_factory.mktemp("e2e-var"), STACK_SETTINGS)
    try:
        stack.start()
    except Exception as error:
        left = stack.stop()
        pytest.fail(f"the stack did not start: {error}\n{left}\n--- {stack.log_path} ---\n{stack.log_tail()}")
    yield stack
    left = stack.stop()
    assert not left, f"the stack left things behind: {left}"


@pytest.fixture(scope="session")
def cameras(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """name -> a .y4m file made from the real video on first use, in a temporary folder; deleted at the end
    (about 40 MB each)."""
    folder = tmp_path_factory.mktemp("e2e-cameras")
    made: dict[str, Path] = {}

    def camera(name: str) -> Path:
        if name not in made:
            made[name] = CLIPS[name].write_y4m(test_data, folder)
        return made[name]

    yield camera
    for path in made.values():
        path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def face_regions(test_data: Path) -> Callable[[str], FaceRegion]:
    """clip name -> the ellipse around its face (measured once per clip with the liveness face detector)."""
    measured: dict[str, FaceRegion] = {}

    def region(name: str) -> FaceRegion:
        if name not in measured:
            measured[name] = face_region(CLIPS[name], test_data)
        return measured[name]

    return region


@pytest.fixture(scope="session")
def camera_scripts(face_regions: Callable[[str], FaceRegion]) -> Callable[..., list[str]]:
    """The scripts a clip's browser gets: the relighting camera (tests/e2e/relight.py), so that the face reflects
    the screen-flash colours as a real face does; ``reflection=None`` leaves the plain fake camera."""

    def scripts(camera: str | None, reflection: float | None = REFLECTION_STRENGTH) -> list[str]:
        if camera is None or reflection is None:
            return []
        return [relight_script(face_regions(camera), reflection)]

    return scripts


@pytest.fixture
def browser(
    cameras: Callable[[str], Path], camera_scripts: Callable[..., list[str]]
) -> Iterator[Callable[..., Browser]]:
    """browser("a_login") -> a fresh Chromium whose webcam plays that clip, lit by the page's flash colours
    (``reflection=None``: not); ``scripts`` are added to every page; all are closed after the test."""
    opened: list[Browser] = []

    def open_browser(
        camera: str | None,
        *,
        grant_camera: bool = True,
        reflection: float | None = REFLECTION_STRENGTH,
        scripts: tuple[str, ...] = (),
    ) -> Browser:
        instance = Browser(
            cameras(camera) if camera else None,
            grant_camera=grant_camera,
            scripts=[*camera_scripts(camera, reflection), *scripts],
        )
        opened.append(instance)
        return instance

    yield open_browser
    for instance in opened:
        instance.quit()


@pytest.fixture(scope="session")
def db(stack: Stack) -> Iterator[Engine]:
    engine = create_engine(stack.database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_client(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


# -- what the database and Redis hold ---------------------------------------------------------------


def audit_events(engine: Engine, claimed_username: str, event: str = "login") -> list[AuditEvent]:
    with Session(engine) as session:
        statement = (
            select(AuditEvent)
            .where(func.lower(AuditEvent.claimed_username) == claimed_username.lower(), AuditEvent.event == event)
            .order_by(AuditEvent.id)
        )
        return list(session.scalars(statement))


def user_id_of(engine: Engine, username: str) -> int | None:
    with Session(engine) as session:
        return session.scalar(select(User.id).where(User.username_key == username.lower()))


def template_count(engine: Engine, user_id: int) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count(FaceTemplate.id)).where(FaceTemplate.user_id == user_id)) or 0


@dataclass(frozen=True)
class StoredSession:
    key: str
    user_id: int | None
    listed_for_user: bool


def stored_session(client: redis.Redis, stack: Stack, cookie_value: str) -> StoredSession | None:
    """The server-side session behind a cookie: Redis keeps it under the SHA-256 of the cookie's id."""
    digest = hashlib.sha256(cookie_value.encode()).hexdigest()
    key = f"{stack.redis_prefix}session:{digest}"
    raw = client.get(key)
    if raw is None:
        return None
    user_id = json.loads(raw).get("data", {}).get("user_id")
    listed = user_id is not None and bool(client.sismember(f"{stack.redis_prefix}user_sessions:{user_id}", digest))
    return StoredSession(key, user_id, listed)


def user_session_count(client: redis.Redis, stack: Stack, user_id: int) -> int:
    return int(client.scard(f"{stack.redis_prefix}user_sessions:{user_id}"))


# -- person A, registered and enrolled in the browser once per session --------------------------------


@dataclass
class PersonA:
    username: str
    user_id: int
    browser: Browser  # still signed in after enrolling
    enroll_message: str


@pytest.fixture(scope="session")
def person_a(
    stack: Stack,
    cameras: Callable[[str], Path],
    camera_scripts: Callable[..., list[str]],
    db: Engine,
    output_dir: Path,
) -> Iterator[PersonA]:
    """Registers A on /register and enrolls A's face on /enroll with the a_enroll clip, as a person would
    (the face lit by the enrollment's flash colours)."""
    username = f"alice_{secrets.token_hex(3)}"
    instance = Browser(cameras("a_enroll"), scripts=camera_scripts("a_enroll"))
    try:
        instance.register(stack.base_url, username, PASSWORD)
        instance.wait_for_path("/enroll")
        assert "Now add your face" in instance.page_text()
        kind, message = instance.enroll()
        events = audit_events(db, username, "enroll")
        assert kind == "ok", (message, [(e.reason, e.details) for e in events], stack.log_tail(3000))
        assert "enrolled" in message.lower()
        instance.wait_for_path("/account")
        user_id = user_id_of(db, username)
        assert user_id is not None
        assert 3 <= template_count(db, user_id) <= 5
        assert [(e.result, e.reason) for e in events] == [("success", "OK")]
        yield PersonA(username, user_id, instance, message)
    finally:
        instance.quit()


def account_with_a_face(db: Engine) -> str:
    """A user with PASSWORD and one made-up face template, straight in the database: the password step passes and
    the camera comes next (the camera scenarios never reach the face check, so the template is never compared)."""
    username = f"nocamera_{secrets.token_hex(3)}"
    with Session(db) as session:
        user = User(username=username, username_key=normalize_username(username), password_hash=hash_password(PASSWORD))
        session.add(user)
        session.flush()
        template = [0.01 * ((i % 7) - 3) for i in range(128)]
        session.add(
            FaceTemplate.seal(template, user_id=user.id, model_version="e2e", cipher=development_cipher(), quality=0.9)
        )
        session.commit()
    return username
