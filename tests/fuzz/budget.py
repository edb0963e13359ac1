"""The fuzz tier's budget: FACEAUTH_FUZZ_EXAMPLES generated requests in all, shared out by weight; a count of
the requests actually sent (reported in the terminal summary by conftest.py)."""

from __future__ import annotations

import collections
import os
import time

import pytest
from hypothesis import HealthCheck, settings

DEFAULT_TOTAL_EXAMPLES = 10_000

#: Requests actually sent, per test (Hypothesis may stop early when a strategy's space is exhausted).
SENT: collections.Counter[str] = collections.Counter()
_STARTED = time.monotonic()


def total_examples() -> int:
    raw = os.environ.get("FACEAUTH_FUZZ_EXAMPLES", "")
    try:
        return max(10, int(raw)) if raw.strip() else DEFAULT_TOTAL_EXAMPLES
    except ValueError:
        raise pytest.UsageError(f"FACEAUTH_FUZZ_EXAMPLES must be an integer, got {raw!r}") from None


def examples(weight: float) -> int:
    """This test's share of the tier's budget (the weights of all fuzz tests add up to 1)."""
    return max(5, round(total_examples() * weight))


def fuzz_settings(weight: float) -> settings:
    return settings(
        max_examples=examples(weight),
        deadline=None,  # a busy 2-core machine: timing is not what is tested here
        database=None,  # no example database (.hypothesis/ keeps only a cache); a failure prints its reproduction
        # CI runs the same examples every time (a red build is then reproducible); elsewhere each run explores anew.
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
        print_blob=True,
    )


def count(test_name: str, requests: int = 1) -> None:
    SENT[test_name] += requests


def started() -> float:
    return _STARTED
