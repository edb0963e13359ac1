"""What a request works with — settings, stores, clients — handed out with their types.

``create_app`` binds them once (``bind``); feature code asks for them here (``settings()``, ``challenges()``,
``face_services()`` …) instead of looking up ``current_app.extensions`` by string. The user-by-name query lives
here too (``find_user``), for the web tier and the CLI alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import Flask, current_app, session
from sqlalchemy import select

from auth_web import throttle
from auth_web.accounts import normalize_username
from auth_web.models import User

if TYPE_CHECKING:  # the types only: these modules import Flask pieces that must not import this one back
    import redis as redis_lib
    from flask_limiter import Limiter
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from auth_web.challenges import ChallengeStore
    from auth_web.config import Settings
    from auth_web.face_services import FaceServices
    from auth_web.mail import Mailer
    from auth_web.proxies import AddressMatcher
    from auth_web.sessions import RedisSession, RedisSessionInterface

_SETTINGS = "FACEAUTH_SETTINGS"
_REDIS = "faceauth_redis"
_CHALLENGES = "faceauth_challenges"
_FACE_SERVICES = "faceauth_services"
_INTERNAL_ADDRESSES = "faceauth_internal_addresses"
_SESSION_FACTORY = "faceauth_db"
_ENGINE = "faceauth_engine"
_LIMITER = "faceauth_limiter"
_MAILER = "faceauth_mailer"


def bind(
    app: Flask,
    *,
    settings: Settings,
    redis_client: redis_lib.Redis,
    challenge_store: ChallengeStore,
    services: FaceServices,
    internal: AddressMatcher,
) -> None:
    app.config[_SETTINGS] = settings
    app.extensions[_REDIS] = redis_client
    app.extensions[_CHALLENGES] = challenge_store
    app.extensions[_FACE_SERVICES] = services
    app.extensions[_INTERNAL_ADDRESSES] = internal


def bind_database(app: Flask, engine_: Engine, factory: sessionmaker[Session]) -> None:
    app.extensions[_ENGINE] = engine_
    app.extensions[_SESSION_FACTORY] = factory


def bind_limiter(app: Flask, limiter_: Limiter) -> None:
    app.extensions[_LIMITER] = limiter_


def settings() -> Settings:
    return cast("Settings", current_app.config[_SETTINGS])


def redis() -> redis_lib.Redis:
    """The Redis client shared by sessions, challenges and the failed-login counts."""
    return cast("redis_lib.Redis", current_app.extensions[_REDIS])


def challenges() -> ChallengeStore:
    return cast("ChallengeStore", current_app.extensions[_CHALLENGES])


def face_services() -> FaceServices:
    return cast("FaceServices", current_app.extensions[_FACE_SERVICES])


def internal_addresses() -> AddressMatcher:
    """Who may read /readyz's details (loopback and AUTH_INTERNAL_ADDRESSES)."""
    return cast("AddressMatcher", current_app.extensions[_INTERNAL_ADDRESSES])


def engine() -> Engine:
    return cast("Engine", current_app.extensions[_ENGINE])


def session_factory() -> sessionmaker[Session]:
    return cast("sessionmaker[Session]", current_app.extensions[_SESSION_FACTORY])


def limiter() -> Limiter | None:
    return cast("Limiter | None", current_app.extensions.get(_LIMITER))


def mailer() -> Mailer:
    """Outgoing mail (SMTP_*; ``enabled`` is False without SMTP_HOST), made on first use."""
    from auth_web.mail import Mailer

    existing = current_app.extensions.get(_MAILER)
    if existing is None:
        existing = current_app.extensions.setdefault(_MAILER, Mailer(settings()))
    return cast("Mailer", existing)


def failure_log() -> throttle.FailureLog:
    """The failed-login counts (delays and locks) of this deployment."""
    return throttle.failure_log(redis(), settings())


def sessions() -> RedisSessionInterface:
    """The server-side session store (list, revoke, end all of a user's sessions)."""
    return cast("RedisSessionInterface", current_app.session_interface)


def browser_session() -> RedisSession:
    """This request's session (its ``hash`` binds challenges to the browser)."""
    return cast("RedisSession", session)


def find_user(db_session: Session, username: str) -> User | None:
    """The account with this name (names compare case-insensitively), or None."""
    return db_session.scalar(select(User).where(User.username_key == normalize_username(username)))
