"""The three attacks of issue 12 against a running stack (``make run``), through the HTTP API as a browser would.

    make run                                   # in another terminal
    .venv/bin/python -m bench.attacks_live [--url https://localhost:8443] [--database-url postgresql://...]

Registers a fresh user and enrolls them with a genuine capture (a real clip window of ``tests/data`` that performs
the enrollment challenge, lit by the reflection simulator for the challenge's colours), then, knowing the password
(a stolen-password scenario), tries to sign in as them with: (1) copies of their portrait with the eyes painted
shut and light noise (turned for a turn prompt), (2) the portrait perspective-turned in the prompted direction,
(3) a recorded clip of them that performs the challenge. Each attack is made after its challenge is issued, for
its prompts and colours. Prints, for each, the HTTP answer and the audit log's reason and liveness checks (read
from the stack's Postgres), and exits 1 if any attack signed in or the genuine login failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth_web.flash import LEAD_MS
from bench.attack_media import Attacks, Media, Presentation, browser_times
from bench.attacks import jpeg
from bench.login_load import csrf_token
from liveness_service.flash import FlashStep
from liveness_service.tools import reflection

PASSWORD = "correct horse battery staple 42"  # noqa: S105 (the test user's, known to the attacker)


class Browser:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, verify=False, timeout=120)  # noqa: S501 (make run's self-signed cert)
        self.token = ""

    def page(self, path: str) -> None:
        response = self.http.get(path)
        response.raise_for_status()
        self.http.headers["Referer"] = str(response.url)
        self.token = csrf_token(response.text)

    def challenge(self, path: str, payload: dict[str, object]) -> dict:
        for _ in range(10):
            response = self.http.post(path, json=payload, headers={"X-CSRFToken": self.token})
            if response.status_code == 429:  # the failed-login delay: wait it out, as a patient attacker would
                time.sleep(float(response.headers.get("Retry-After", "5")) + 0.5)
                continue
            response.raise_for_status()
            return response.json()
        raise RuntimeError(f"{path}: still rate limited")

    def post_capture(self, path: str, body: dict, shot: Presentation, fields: dict[str, str]) -> httpx.Response:
        # The page cannot post before it has filmed the frames: neither may we (CAPTURE_TOO_EARLY).
        time.sleep(shot.times_ms[-1] / 1000 + 0.3)
        data = {
            "nonce": body["nonce"],
            "frame_times_ms": json.dumps(shot.times_ms),
            "flash_start_ms": str(LEAD_MS),
            **fields,
        }
        files = [("frames", (f"frame{i}.jpg", jpeg(image), "image/jpeg")) for i, image in enumerate(shot.frames)]
        return self.http.post(path, data=data, files=files, headers={"X-CSRFToken": self.token})


def steps_of(body: dict) -> list[FlashStep]:
    return [FlashStep(int(step["colour"][1:], 16), int(step["duration_ms"])) for step in body["flash"]["steps"]]


def genuine_shot(media: Media, body: dict, rng: np.random.Generator, clip: str | None) -> tuple[Presentation, str]:
    """A window of ``clip`` (or any clip) performing the challenge's actions, lit by its colours."""
    frames = int(body["capture"]["frames"])
    window = media.matching_window(body["actions"], frames, rng, clips=[clip] if clip else None)
    if window is None:
        raise LookupError(f"no clip window performs {body['actions']}")
    times = browser_times(frames, rng)
    landmarks = media.landmarks[window.clip][window.start : window.start + frames]
    lit = reflection.relight(media.window_frames(window), landmarks, steps_of(body), LEAD_MS, times, rng)
    return Presentation(lit, times, tuple(body["actions"])), window.clip


def last_login(database_url: str, username: str) -> tuple[str, dict]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url)
    with engine.connect() as connection:
        row = connection.execute(
            sqlalchemy.text(
                "SELECT reason, details FROM audit_events WHERE event = 'login' AND claimed_username = :name "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"name": username},
        ).one()
    engine.dispose()
    details = row.details if isinstance(row.details, dict) else json.loads(row.details or "{}")
    return row.reason, details


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="https://localhost:8443")
    parser.add_argument("--database-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/faceauth")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    media = Media()
    username = f"victim{uuid.uuid4().hex[:8]}"

    owner = Browser(args.url)
    owner.page("/register")
    owner.http.post(
        "/register",
        data={"csrf_token": owner.token, "username": username, "password": PASSWORD, "confirm": PASSWORD},
        follow_redirects=True,
    ).raise_for_status()
    owner.page("/enroll")
    enrolled_clip = None
    for _ in range(20):  # until the enrollment challenge asks for actions some clip window performs
        body = owner.challenge("/api/enroll/challenge", {})
        try:
            shot, enrolled_clip = genuine_shot(media, body, rng, None)
        except LookupError:
            continue
        answer = owner.post_capture("/api/enroll", body, shot, {})
        if answer.status_code == 200:
            break
        print(f"enrollment refused ({answer.status_code}), trying again")
    else:
        print("could not enroll")
        return 1
    print(f"enrolled {username} from {enrolled_clip}")

    # The victim's own face is the attacker's material: their portrait and their recordings.
    attacks = Attacks(media, portraits=[enrolled_clip], clips=[enrolled_clip])
    failures = 0
    results = []
    for name, make in (
        ("painted_blink", attacks.painted_blink),
        ("perspective_turn", attacks.perspective_turn),
        ("replay_of_a_recording", attacks.replay),
    ):
        attacker = Browser(args.url)
        attacker.page("/login")
        body = attacker.challenge("/api/login/challenge", {"username": username})
        shot = make(body["actions"], int(body["capture"]["frames"]), rng)
        answer = attacker.post_capture("/api/login", body, shot, {"password": PASSWORD})
        reason, details = last_login(args.database_url, username)
        signed_in = answer.status_code == 200 and answer.json().get("ok") is True
        failures += signed_in
        liveness = details.get("liveness_failed_checks")
        results.append((name, body["actions"], answer.status_code, reason, liveness))
        print(f"{name:24s} prompts {body['actions']}: HTTP {answer.status_code}, audit {reason}, liveness {liveness}")

    owner_login = Browser(args.url)
    owner_login.page("/login")
    for _ in range(5):
        body = owner_login.challenge("/api/login/challenge", {"username": username})
        try:
            shot, _clip = genuine_shot(media, body, rng, enrolled_clip)
        except LookupError:
            continue
        answer = owner_login.post_capture("/api/login", body, shot, {"password": PASSWORD})
        print(f"genuine login: HTTP {answer.status_code}, audit {last_login(args.database_url, username)[0]}")
        return 1 if failures or answer.status_code != 200 else 0
    print("no clip window performs the login challenges drawn")
    return 1


if __name__ == "__main__":
    sys.exit(main())
