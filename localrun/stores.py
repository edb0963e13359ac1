"""Where the local run keeps its data: DATABASE_URL / REDIS_URL if set, else the local Postgres and Redis on their
default ports (the database is created if missing), else an embedded SQLite file and an in-memory
Redis-compatible server (fakeredis, run as a child: ``python -m localrun --embedded-redis HOST:PORT``)."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from localrun.network import free_local_port, split_address, tcp_answers
from localrun.settings import RunError, RunSettings
from localrun.supervisor import Console

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/faceauth"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_WARNING = (
    "EMBEDDED MODE: {what}. This is for trying faceauth out on one machine, NOT FOR PRODUCTION: "
    "the embedded Redis keeps sessions and rate limits in memory (lost on exit) and SQLite is a single file. "
    "Set DATABASE_URL / REDIS_URL or start Postgres and Redis on their default ports."
)


@dataclass(frozen=True)
class Backends:
    database_url: str
    redis_url: str
    embedded_redis_port: int | None  # set when the embedded Redis server must be started


def choose_backends(settings: RunSettings, env: Mapping[str, str], console: Console) -> Backends:
    database_url = env.get("DATABASE_URL", "").strip()
    redis_url = env.get("REDIS_URL", "").strip()
    embedded: list[str] = []
    if not database_url:
        if not settings.embedded_forced and tcp_answers("127.0.0.1", 5432):
            database_url = DEFAULT_DATABASE_URL
        else:
            settings.var_dir.mkdir(parents=True, exist_ok=True)
            database_url = f"sqlite:///{settings.var_dir / 'faceauth.sqlite3'}"
            embedded.append(f"SQLite database {settings.var_dir / 'faceauth.sqlite3'}")
    if database_url.startswith("postgresql"):
        ensure_postgres_database(database_url)
    embedded_redis_port = None
    if not redis_url:
        if not settings.embedded_forced and redis_answers(DEFAULT_REDIS_URL):
            redis_url = DEFAULT_REDIS_URL
        else:
            embedded_redis_port = free_local_port()
            redis_url = f"redis://127.0.0.1:{embedded_redis_port}/0"
            embedded.append(f"in-memory Redis-compatible server on 127.0.0.1:{embedded_redis_port}")
    if embedded:
        console.warn(EMBEDDED_WARNING.format(what="; ".join(embedded)))
    return Backends(database_url, redis_url, embedded_redis_port)


def ensure_postgres_database(url: str) -> None:
    """Create the database named in ``url`` if it does not exist (connecting to the ``postgres`` database)."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or "postgres"
    params = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "dbname": "postgres",
        "connect_timeout": 3,
    }
    try:
        connection = psycopg2.connect(**{k: v for k, v in params.items() if v is not None})
    except psycopg2.OperationalError as error:
        raise RunError(f"cannot connect to Postgres at {params['host']}:{params['port']}: {error}".strip()) from None
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def redis_answers(url: str) -> bool:
    """Redis at ``url`` answers a PING (RunError when it answers but refuses us)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
    except redis.exceptions.RedisError as error:
        raise RunError(f"Redis at {url} answers but refuses us ({error}); set REDIS_URL") from None
    finally:
        client.close()


def redis_pings(url: str) -> bool:
    """Readiness of the embedded Redis: it answers a PING (any refusal counts as not yet)."""
    try:
        return redis_answers(url)
    except RunError:
        return False


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for the console."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def serve_embedded_redis(address: str) -> int:
    """The embedded Redis (fakeredis' TCP server), run as a child process of the local run."""
    from fakeredis import TcpFakeServer

    host, port = split_address(address)
    server = TcpFakeServer((host, port), server_type="redis")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print(f"embedded Redis-compatible server (fakeredis) listening on {host}:{port}; data lives in memory", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    print("embedded Redis stopped", flush=True)
    return 0
