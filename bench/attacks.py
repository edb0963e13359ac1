"""The attack suite: every injected-frame attack class against the real liveness service, APCER per class.

    make attacks                      # or: .venv/bin/python -m bench.attacks [--trials 20] [--genuine 60]

Starts ``python -m liveness_service`` with its default settings (mutual TLS, as auth-web talks to it), and for
every trial draws a challenge the way auth-web does at its defaults (one BLINK and one head turn in random order,
a colour sequence for the screen flash), makes the attack presentation for it at run time from the licensed
data in ``tests/data`` (``bench/attack_media.py``), and sends it as auth-web would (``CheckRequest``: JPEG
frames, frame times, the challenge, the flash sequence and its start). Genuine captures are real clip windows
with the screen's light added by the reflection simulator (``liveness_service.tools.reflection``).

Numbers, in ISO/IEC 30107-3 wording: APCER of an attack class = attack presentations accepted / attack
presentations tried; BPCER = genuine presentations refused / genuine presentations tried. Writes
``bench/results/attacks.json`` and ``.md``. Fixed seeds: the same command gives the same numbers.

``--without flash`` (repeatable) also runs every class against a second service with that check switched off,
to show what each layer stops on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from auth_web.flash import LEAD_MS, PALETTE, FlashPolicy, capture_ms, frames_to_cover
from bench.attack_media import CAPTURE_FPS, Attacks, Media, Presentation, browser_times
from bench.processes import free_port
from faceauth.liveness.v1 import liveness_pb2, liveness_pb2_grpc
from faceauth_common.grpc_client import secure_channel
from faceauth_common.tls import GrpcTls
from liveness_service.challenge import BLINK, TURN_LEFT, TURN_RIGHT
from liveness_service.flash import FlashStep
from liveness_service.tools import reflection

SERVICE = "faceauth.liveness.v1.LivenessService"
RESULTS = Path(__file__).resolve().parent / "results"
ACTION_VALUES = {
    BLINK: liveness_pb2.ACTION_BLINK,
    TURN_LEFT: liveness_pb2.ACTION_TURN_LEFT,
    TURN_RIGHT: liveness_pb2.ACTION_TURN_RIGHT,
}


@dataclass(frozen=True)
class Flash:
    steps: tuple[FlashStep, ...]
    start_ms: int

    @property
    def total_ms(self) -> int:
        return sum(step.duration_ms for step in self.steps)


@dataclass(frozen=True)
class Challenge:
    actions: tuple[str, ...]
    flash: Flash
    frames: int


def draw_challenge(rng: np.random.Generator) -> Challenge:
    """auth-web's default challenge drawn from a seeded generator (auth-web draws with ``secrets``): one BLINK and
    one turn in random order, a colour sequence by its default ``FlashPolicy``, and the capture that covers it."""
    policy = FlashPolicy()
    turn = TURN_LEFT if rng.random() < 0.5 else TURN_RIGHT
    actions = (BLINK, turn) if rng.random() < 0.5 else (turn, BLINK)
    steps: list[FlashStep] = []
    for _ in range(policy.steps):
        choices = [rgb for rgb in PALETTE if not steps or rgb != steps[-1].rgb]
        duration = int(rng.integers(policy.min_duration_ms, policy.max_duration_ms + 1))
        steps.append(FlashStep(choices[int(rng.integers(len(choices)))], duration))
    # The page films LEAD_MS before it paints the first colour.
    flash = Flash(tuple(steps), start_ms=LEAD_MS)
    return Challenge(actions, flash, frames_to_cover(capture_ms(flash.total_ms), CAPTURE_FPS))


# -- what is sent -------------------------------------------------------------------------------------------


def jpeg(image_rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return encoded.tobytes()


def request_for(presentation: Presentation, challenge: Challenge) -> liveness_pb2.CheckRequest:
    return liveness_pb2.CheckRequest(
        frames=[jpeg(image) for image in presentation.frames],
        challenge=[ACTION_VALUES[a] for a in presentation.actions],
        frame_times_ms=presentation.times_ms,
        flash=[liveness_pb2.FlashStep(rgb=step.rgb, duration_ms=step.duration_ms) for step in challenge.flash.steps],
        flash_start_ms=challenge.flash.start_ms,
    )


# -- the attack classes ----------------------------------------------------------------------------------


def _tinted(mode: str) -> Callable[[Attacks, Challenge, np.random.Generator], Presentation]:
    def make(attacks: Attacks, challenge: Challenge, rng: np.random.Generator) -> Presentation:
        replay = attacks.replay(challenge.actions, challenge.frames, rng)
        strength = float(rng.uniform(0.04, 0.3))
        frames = reflection.global_tint(
            replay.frames,
            challenge.flash.steps,
            challenge.flash.start_ms,
            replay.times_ms,
            mode,
            strength,
            lag_ms=float(rng.uniform(0, 150)),
        )
        return Presentation(frames, replay.times_ms, replay.actions)

    return make


def _box_tinted(attacks: Attacks, challenge: Challenge, rng: np.random.Generator) -> Presentation:
    replay = attacks.replay(challenge.actions, challenge.frames, rng)
    boxes = [attacks.media.analyzer.observe(image).box for image in replay.frames]
    strength = float(rng.uniform(0.04, 0.3))
    frames = reflection.box_tint(
        replay.frames,
        boxes,
        challenge.flash.steps,
        challenge.flash.start_ms,
        replay.times_ms,
        strength,
        scale=float(rng.uniform(1.0, 1.6)),
        lag_ms=float(rng.uniform(0, 150)),
    )
    return Presentation(frames, replay.times_ms, replay.actions)


def _plain(name: str, **options: str) -> Callable[[Attacks, Challenge, np.random.Generator], Presentation]:
    def make(attacks: Attacks, challenge: Challenge, rng: np.random.Generator) -> Presentation:
        return getattr(attacks, name)(challenge.actions, challenge.frames, rng, **options)

    return make


ATTACK_CLASSES: dict[str, tuple[str, Callable[[Attacks, Challenge, np.random.Generator], Presentation]]] = {
    "still": ("one portrait sent as every frame (identical JPEGs)", _plain("still")),
    "still_noise": ("one portrait, fresh noise (σ 2–5) on every frame", _plain("still_noise")),
    "handheld_jitter": (
        "a portrait moved like a hand holds it (±10 px, ±5°, ±3 % scale, smooth), noise; eyes painted closed for BLINK",
        _plain("handheld_jitter"),
    ),
    "perspective_turn_mirrored": (
        "a portrait turned 20–40° about its vertical axis in each prompted direction, mirrored borders, eyes "
        "painted closed for BLINK, noise",
        _plain("perspective_turn", border="mirrored"),
    ),
    "perspective_turn_black": (
        "the same with black borders",
        _plain("perspective_turn", border="black"),
    ),
    "painted_blink": (
        "copies of a portrait, the eyes painted over in 4 frames, light noise (turned for a turn prompt)",
        _plain("painted_blink"),
    ),
    "splice_aba": ("a recording of person A with a stretch of person B in the middle", _plain("splice")),
    "replay": ("a recorded genuine clip that performs the challenge (when the clips hold one)", _plain("replay")),
    "replay_forged_times": (
        "frames picked from a longer recording so they hold the actions, re-timed as one capture",
        _plain("replay_forged_times"),
    ),
    "replay_global_tint_multiply": (
        "a recorded clip, every whole frame multiplied by the issued colour sequence (4–30 %)",
        _tinted("multiply"),
    ),
    "replay_global_tint_add": (
        "a recorded clip, the issued colour sequence added to every whole frame (4–30 %)",
        _tinted("add"),
    ),
    "replay_box_tint": (
        "a recorded clip, the face box alone tinted with the issued colour sequence (4–30 %)",
        _box_tinted,
    ),
}


# -- running -----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    accepted: int = 0
    tried: int = 0
    reasons: Counter = field(default_factory=Counter)
    failed_checks: Counter = field(default_factory=Counter)
    flash_scores: list[float] = field(default_factory=list)

    def add(self, response: liveness_pb2.CheckResponse) -> None:
        self.tried += 1
        self.accepted += int(response.live)
        self.reasons[liveness_pb2.LivenessReason.Name(response.reason).removeprefix("LIVENESS_REASON_")] += 1
        for reason in response.failed_checks:
            self.failed_checks[liveness_pb2.LivenessReason.Name(reason).removeprefix("LIVENESS_REASON_")] += 1
        if response.HasField("flash"):
            self.flash_scores.append(round(float(response.flash.score), 4))

    def summary(self) -> dict[str, object]:
        return {
            "tried": self.tried,
            "accepted": self.accepted,
            "rate": round(self.accepted / self.tried, 4) if self.tried else None,
            "first_reason": dict(self.reasons.most_common()),
            "failed_checks": dict(self.failed_checks.most_common()),
            "flash_score_median": float(np.median(self.flash_scores)) if self.flash_scores else None,
        }


class LivenessProcess:
    """``python -m liveness_service`` with the default settings plus ``env``, mutual TLS, on a free port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.tls = GrpcTls(Path(tempfile.mkdtemp(prefix="attacks-grpc-tls-")))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "liveness_service"],
            env={**os.environ, **self.tls.env, **env, "LIVENESS_LISTEN": self.address, "LOG_LEVEL": "WARNING"},
            stdout=subprocess.DEVNULL,
        )
        self.channel = secure_channel(self.address, self.tls.client)
        self.stub = liveness_pb2_grpc.LivenessServiceStub(self.channel)

    def wait(self) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"liveness_service exited with {self.process.returncode}")
            try:
                if health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.3)
        raise RuntimeError("liveness_service did not become SERVING within 180 s")

    def check(self, request: liveness_pb2.CheckRequest) -> liveness_pb2.CheckResponse:
        return self.stub.Check(request, timeout=60)

    def stop(self) -> None:
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def genuine_presentations(
    media: Media, count: int, rng: np.random.Generator
) -> list[tuple[Presentation, Presentation, Challenge, dict[str, object]]]:
    """Real clip windows that perform a challenge, each lit by its own flash sequence (reflection simulator), and the
    same window unlit (what a service without the flash check is sent: the page then paints nothing).

    The genuine user does what is asked: the challenge of each window is the actions it performs (at most one
    blink and one turn, in its order); windows that perform none answer a challenge of no action.
    """
    out = []
    by_length: dict[int, list] = {}
    for _ in range(count):
        drawn = draw_challenge(rng)
        windows = by_length.setdefault(drawn.frames, media.windows(drawn.frames, stride=3))
        window = windows[int(rng.integers(len(windows)))]
        challenge = Challenge(window.actions, drawn.flash, drawn.frames)
        times = browser_times(drawn.frames, rng)
        frames = media.window_frames(window)
        landmarks = media.landmarks[window.clip][window.start : window.start + window.frames]
        model = reflection.ReflectionModel.draw(rng)
        lit = reflection.relight(frames, landmarks, drawn.flash.steps, drawn.flash.start_ms, times, rng, model)
        parameters = {
            "clip": window.clip,
            "start_frame": window.start,
            "strength": round(model.strength, 3),
            "delay_ms": round(model.delay_ms, 1),
            "white_balance": round(model.white_balance, 3),
            "noise_levels": round(model.noise_levels, 2),
        }
        unlit = Presentation(frames, times, window.actions)
        out.append((Presentation(lit, times, window.actions), unlit, challenge, parameters))
    return out


def run(trials: int, genuine: int, seed: int, without: Sequence[str]) -> dict[str, object]:
    started = time.perf_counter()
    media = Media()
    attacks = Attacks(media)
    configurations = {"default": {}}
    for check in without:
        from liveness_service.config import CHECKS

        kept = [c for c in CHECKS if c != check]
        configurations[f"without_{check}"] = {"LIVENESS_CHECKS": ",".join(kept)}
    services = {name: LivenessProcess(env) for name, env in configurations.items()}
    results: dict[str, dict[str, object]] = {name: {} for name in configurations}
    try:
        for service in services.values():
            service.wait()
        for index, (name, (_description, make)) in enumerate(ATTACK_CLASSES.items()):
            outcomes = {configuration: Outcome() for configuration in configurations}
            rng = np.random.default_rng([seed, index])
            for _ in range(trials):
                challenge = draw_challenge(rng)
                request = request_for(make(attacks, challenge, rng), challenge)
                for configuration, service in services.items():
                    outcomes[configuration].add(service.check(request))
            for configuration, outcome in outcomes.items():
                results[configuration][name] = outcome.summary()
            print(f"{name:30s} APCER {outcomes['default'].accepted}/{trials}", flush=True)
        genuine_outcomes = {configuration: Outcome() for configuration in configurations}
        strengths = []
        for lit, unlit, challenge, parameters in genuine_presentations(
            media, genuine, np.random.default_rng([seed, 1000])
        ):
            strengths.append(parameters)
            for configuration, service in services.items():
                flashed = configuration != "without_flash"
                genuine_outcomes[configuration].add(service.check(request_for(lit if flashed else unlit, challenge)))
        for configuration, outcome in genuine_outcomes.items():
            refused = outcome.tried - outcome.accepted
            results[configuration]["genuine"] = {**outcome.summary(), "refused": refused}
        print(f"{'genuine':30s} BPCER {genuine - genuine_outcomes['default'].accepted}/{genuine}", flush=True)
    finally:
        for service in services.values():
            service.stop()
    return {
        "seed": seed,
        "trials_per_class": trials,
        "genuine_presentations": genuine,
        "classes": {name: description for name, (description, _make) in ATTACK_CLASSES.items()},
        "results": results,
        "genuine_simulation": strengths,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }


def markdown(report: dict[str, object]) -> str:
    results = report["results"]
    configurations = list(results)
    lines = [
        "# Attack suite — liveness against injected frames",
        "",
        f"`python -m bench.attacks` (seed {report['seed']}, {report['trials_per_class']} presentations per attack "
        f"class, {report['genuine_presentations']} genuine; {report['seconds']} s). The liveness service runs with "
        "its default settings; every challenge is auth-web's default (one BLINK and one turn in random order, a "
        "random colour sequence for the screen flash). APCER = attack presentations accepted / tried; BPCER = "
        "genuine presentations refused / tried (ISO/IEC 30107-3).",
        "",
        "| attack class | " + " | ".join(f"APCER ({c})" for c in configurations) + " | refused as (default) |",
        "|---|" + "---|" * len(configurations) + "---|",
    ]
    for name, description in report["classes"].items():
        cells = []
        for configuration in configurations:
            outcome = results[configuration][name]
            cells.append(f"{outcome['accepted']}/{outcome['tried']} ({100 * outcome['rate']:.0f} %)")
        reasons = ", ".join(f"{k} {v}" for k, v in results["default"][name]["first_reason"].items())
        lines.append(f"| `{name}` — {description} | " + " | ".join(cells) + f" | {reasons} |")
    lines += ["", "| genuine (simulated reflection) | " + " | ".join(f"BPCER ({c})" for c in configurations) + " |"]
    lines.append("|---|" + "---|" * len(configurations))
    cells = []
    for configuration in configurations:
        outcome = results[configuration]["genuine"]
        cells.append(f"{outcome['refused']}/{outcome['tried']} ({100 * outcome['refused'] / outcome['tried']:.1f} %)")
    reasons = ", ".join(f"{k} {v}" for k, v in results["default"]["genuine"]["first_reason"].items())
    lines.append(
        f"| real clip windows of tests/data, lit by the simulator (unlit for `without_flash`); default refused as: "
        f"{reasons} | " + " | ".join(cells) + " |"
    )
    lines += ["", "The reflection simulator's model and limits: `liveness_service/tools/reflection.py`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="presentations per attack class (default 20)")
    parser.add_argument("--genuine", type=int, default=60, help="genuine presentations (default 60)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--without", action="append", default=[], help="also run with this check off (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS / "attacks")
    args = parser.parse_args(argv)
    report = run(args.trials, args.genuine, args.seed, args.without)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    default = report["results"]["default"]
    failed = [name for name in ATTACK_CLASSES if default[name]["accepted"]]
    bpcer = default["genuine"]["refused"] / max(default["genuine"]["tried"], 1)
    print(f"wrote {args.out.with_suffix('.md')}; classes with accepted attacks: {failed or 'none'}; BPCER {bpcer:.1%}")
    return 1 if failed or bpcer > 0.05 else 0


if __name__ == "__main__":
    sys.exit(main())
