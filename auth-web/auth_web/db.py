"""The SQLAlchemy engine of the app and one ORM session per request."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from auth_web import context
from auth_web.config import Settings


def make_engine(settings: Settings) -> Engine:
    url = settings.database_url
    connect_args: dict[str, object] = {}
    if url.startswith("postgresql"):
        # Fail fast when Postgres is down: the request becomes a 503 instead of hanging.
        connect_args["connect_timeout"] = settings.db_connect_timeout_seconds
    elif url.startswith("sqlite"):
        connect_args["check_same_thread"] = False
        connect_args["timeout"] = 15
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


def init_app(app: Flask, settings: Settings) -> None:
    engine = make_engine(settings)
    context.bind_database(app, engine, sessionmaker(engine, expire_on_commit=False))

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def db() -> Session:
    """The ORM session of the current request (created on first use, closed at teardown)."""
    if "db_session" not in g:
        g.db_session = context.session_factory()()
    return g.db_session
