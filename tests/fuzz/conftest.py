"""The fuzz tier: Hypothesis-generated HTTP requests and gRPC messages; no input may give a 5xx or a crash.

Budget: FACEAUTH_FUZZ_EXAMPLES (default 10 000) generated requests for the whole tier, shared out by weight
between the tests (``examples(weight)``); the terminal summary reports how many were actually sent. The HTTP
tests drive the real app (real Postgres database of its own, real Redis prefix) through Flask's test client with
stubbed face services; the gRPC tests call the real servicers with the real models, in process and over a real
channel.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import psycopg2
import pytest
import redis

from .budget import SENT, started, total_examples

PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/0"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SENT:
        return
    total = sum(SENT.values())
    terminalreporter.section("fuzz tier")
    for name, sent in sorted(SENT.items()):
        terminalreporter.write_line(f"{sent:7d}  {name}")
    terminalreporter.write_line(
        f"{total:7d}  generated requests in total (budget {total_examples()}), "
        f"{time.monotonic() - started():.0f} s since the tier's first import"
    )


# -- a database and a Redis prefix of the tier's own ------------------------------------------------------


@pytest.fixture(scope="session")
def fuzz_database_url() -> Iterator[str]:
    from auth_web.migrate import upgrade

    name = f"faceauth_fuzz_{secrets.token_hex(6)}"
    admin = psycopg2.connect(**PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def fuzz_redis_prefix() -> Iterator[str]:
    prefix = f"faceauth_fuzz_{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()
