"""The fuzz tier: Hypothesis-generated HTTP requests and gRPC messages; no input may give a 5xx or a crash.

Budget: FACEAUTH_FUZZ_EXAMPLES (default 10 000) generated requests for the whole tier, shared out by weight
between the tests (``examples(weight)``); the terminal summary reports how many were actually sent. The HTTP
tests drive the real app (real Postgres database of its own, real Redis prefix) through Flask's test client with
stubbed face services; the gRPC tests call the real servicers with the real models, in process and over a real
channel.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conftest import throwaway_database, throwaway_redis_prefix

from .budget import SENT, started, total_examples


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

    with throwaway_database("faceauth_fuzz") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def fuzz_redis_prefix() -> Iterator[str]:
    with throwaway_redis_prefix("faceauth_fuzz") as prefix:
        yield prefix
