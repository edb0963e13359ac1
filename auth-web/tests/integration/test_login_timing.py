"""Refusals with the real services: what they cost, and that they all look alike.

Password + face, in pairs that must not be told apart: a wrong password with the owner's face against one with
someone else's, a wrong against the right password (both with someone else's face), an unknown against a known
username. Face only: an unknown against a known username.
Asserted: the behaviour (one status and one body for every refusal, the audited reason). Measured, not
asserted (the build machine is shared, so timed asserts would be flaky): the wall time of each attempt,
``FACEAUTH_TIMING_TRIES`` tries per case (default 3); ``FACEAUTH_TIMING_OUT=path.json`` writes the medians.
The recorded numbers (20 tries each) are in auth-web/README.md, "Measured numbers".
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from auth_web import create_app
from auth_web.login import GENERIC_FAILURE
from auth_web.models import User

from .conftest import GENUINE_TRIES, PASSWORD, Browser, Clip, RealServices, audit_rows, unique_username

TRIES = int(os.environ.get("FACEAUTH_TIMING_TRIES", "3"))


@dataclass
class Person:
    username: str
    user_id: int


def _app(base_settings, real_services: RealServices, name: str, **changes) -> Flask:  # type: ignore[no-untyped-def]
    settings = base_settings.replace(
        redis_prefix=f"{base_settings.redis_prefix}timing-{name}:",
        liveness_target=real_services.liveness,
        recognition_target=real_services.recognition,
        lockout_threshold=2,  # a locked address is two failures away; every timed case comes from an address of
        **changes,  # its own (one failure each), so it never locks
    )
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def two_factor_app(base_settings, real_services: RealServices) -> Flask:  # type: ignore[no-untyped-def]
    return _app(base_settings, real_services, "password")


@pytest.fixture(scope="module")
def face_only_app(base_settings, real_services: RealServices) -> Flask:  # type: ignore[no-untyped-def]
    return _app(base_settings, real_services, "face", factors="face")


@pytest.fixture(scope="module")
def person_a(two_factor_app: Flask, db_engine, clip_a_enroll: Clip) -> Iterator[Person]:  # type: ignore[no-untyped-def]
    browser = Browser(two_factor_app.test_client())
    username = unique_username("timed")
    assert browser.register(username).status_code == 302
    assert browser.enroll_genuine(clip_a_enroll).status_code == 200
    with Session(db_engine) as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        yield Person(username, user.id)


@pytest.fixture(scope="module")
def measured() -> Iterator[dict[str, dict[str, float]]]:
    results: dict[str, dict[str, float]] = {}
    load_at_start = os.getloadavg()[0]
    yield results
    target = os.environ.get("FACEAUTH_TIMING_OUT")
    if target:
        document = {
            "what": "wall time of refused POST /api/login, real liveness and recognition services, Flask test client"
            " in process, 17-23 frames of 640x480 JPEG lit by the challenge's flash, cases interleaved round by round"
            " (test_login_timing.py)",
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "load_average": {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2)},
            "tries": TRIES,
            "cases": results,
        }
        Path(target).write_text(json.dumps(document, indent=2) + "\n")


_addresses = iter(range(1, 1_000_000))


def fresh_browser(app: Flask) -> Browser:
    """A browser at an address nobody used yet (its own throttle budgets)."""
    number = next(_addresses)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
    return Browser(client)


def timed_attempt(browser: Browser, username: str, frames: Clip, password: str | None):  # type: ignore[no-untyped-def]
    """(response, seconds): only the POST /api/login is timed, not the page, the challenge or the filming."""
    browser.refresh_csrf()
    nonce = browser.challenge(username)["nonce"]
    shot = browser.shoot(nonce, frames)
    started = time.perf_counter()
    response = browser.submit("/api/login", nonce, shot, password)
    return response, time.perf_counter() - started


def run_cases(measured: dict[str, dict[str, float]], cases: dict[str, Callable[[], tuple]]) -> dict[str, list]:  # type: ignore[type-arg]
    """Every case ``TRIES`` times, interleaved (one of each per round), so that a change of load on the machine
    weighs on all of them alike; the responses of each case."""
    responses: dict[str, list] = {name: [] for name in cases}  # type: ignore[type-arg]
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(TRIES):
        for name, attempt in cases.items():
            response, elapsed = attempt()
            responses[name].append(response)
            seconds[name].append(elapsed)
    for name, values in seconds.items():
        measured[name] = {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }
        print(f"{name}: {measured[name]}")
    return responses


def assert_generic_refusals(responses: list) -> None:  # type: ignore[type-arg]
    for response in responses:
        assert response.status_code == 401
        assert response.get_json() == {"ok": False, "error": "login_failed", "message": GENERIC_FAILURE}


def test_a_wrong_password_is_refused_like_a_wrong_face(  # type: ignore[no-untyped-def]
    two_factor_app, person_a, clip_a_login, clip_b, db_engine, measured
) -> None:
    app, name = two_factor_app, person_a.username
    locked_browser = fresh_browser(app)
    for _ in range(2):
        assert timed_attempt(locked_browser, name, clip_a_login, "wrong password!")[0].status_code == 401
    responses = run_cases(
        measured,
        {
            "password+face: wrong password, owner's face": lambda: timed_attempt(
                fresh_browser(app), name, clip_a_login, "wrong password!"
            ),
            "password+face: wrong password, someone else's face": lambda: timed_attempt(
                fresh_browser(app), name, clip_b, "wrong password!"
            ),
            "password+face: right password, someone else's face": lambda: timed_attempt(
                fresh_browser(app), name, clip_b, PASSWORD
            ),
            "password+face: unknown username, someone else's face": lambda: timed_attempt(
                fresh_browser(app), unique_username("ghost"), clip_b, PASSWORD
            ),
        },
    )
    assert_generic_refusals([response for answers in responses.values() for response in answers])
    # A locked address is told so, with its wait, before anything is checked (test_abuse.py: what it is told).
    locked = locked_browser.post_json("/api/login/challenge", {"username": name})
    assert locked.status_code == 429 and locked.get_json()["error"] == "locked"
    rows = audit_rows(db_engine, name)
    reasons = [row.reason for row in rows]
    assert reasons.count("BAD_PASSWORD") == 2 * TRIES + 2 and reasons.count("LOCKED") == 1
    # The right password with someone else's face: refused by the face (recognition says no match; liveness may
    # object first, and the audit's reason names it then).
    face_refusals = [row for row in rows if row.reason not in ("BAD_PASSWORD", "LOCKED")]
    assert len(face_refusals) == TRIES
    assert all(row.details["verify_reason"] == "VERIFY_NO_MATCH" for row in face_refusals)
    # The owner, from an address of their own, still signs in.
    owner = fresh_browser(app)
    for _ in range(GENUINE_TRIES):
        status = timed_attempt(owner, name, clip_a_login, PASSWORD)[0].status_code
        if status == 200:
            break
    assert status == 200


def test_face_only_mode_refuses_unknown_and_known_usernames_alike(  # type: ignore[no-untyped-def]
    face_only_app, person_a, clip_b, db_engine, measured
) -> None:
    app, name = face_only_app, person_a.username
    ghosts: list[str] = []

    def unknown_attempt():  # type: ignore[no-untyped-def]
        ghosts.append(unique_username("ghost"))
        return timed_attempt(fresh_browser(app), ghosts[-1], clip_b, None)

    responses = run_cases(
        measured,
        {
            "face only: known username, someone else's face": lambda: timed_attempt(
                fresh_browser(app), name, clip_b, None
            ),
            "face only: unknown username, someone else's face": unknown_attempt,
        },
    )
    assert_generic_refusals([response for answers in responses.values() for response in answers])
    assert [row.details["verify_reason"] for row in audit_rows(db_engine, name)[-TRIES:]] == ["VERIFY_NO_MATCH"] * TRIES
    assert all(audit_rows(db_engine, ghost)[-1].reason == "UNKNOWN_USER" for ghost in ghosts)
