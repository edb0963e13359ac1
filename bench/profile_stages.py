"""Where a login's service time goes: pyinstrument profiles of the real servicers and of auth-web, in process.

Each service's own wiring (``load_engine(settings)`` and ``add_servicers(server, slot, settings)`` from
``<service>/server.py``, settings from the same environment the stack uses) is loaded into this process,
and the servicer's ``Verify`` / ``Check`` handler is called directly — proto request in, proto response
out, the same code the gRPC thread runs, minus the transport — on an 8-frame login capture, ``--calls``
times, under pyinstrument. Writes the full call trees to ``results/<name>_<stage>.txt`` and a summary
(functions by self time, per call) to ``results/<name>.json|md``.

With ``--auth-web`` (run_all.sh passes it; needs the bench stack's Postgres, Redis and gRPC services), auth-web's
own share is profiled too: the Flask app built by ``auth_web.create_app`` from the same environment, driven
through Flask's test client (no gunicorn, no gateway): a user is registered and enrolled, then the login flow
(login page, challenge, 8-frame login POST) is profiled. pyinstrument samples the calling thread only, so the
time auth-web spends waiting for the parallel gRPC calls shows up as waiting, and the rest is auth-web's own CPU.

    .venv/bin/python -m bench.profile_stages [--calls 10]
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import grpc
from pyinstrument import Profiler

from bench import report
from bench.frames import DEFAULT_CLIP, relative_times
from bench.scenario import CHALLENGE_ACTION, build_scenario
from faceauth.liveness.v1 import liveness_pb2
from faceauth.recognition.v1 import recognition_pb2
from faceauth_common.grpc_server import EngineSlot

LOGIN_FRAMES = 8


class _Aborted(Exception):
    pass


class DirectContext:
    """The parts of ``grpc.ServicerContext`` a servicer uses, for calling it without a server."""

    def __init__(self, deadline_seconds: float = 30.0) -> None:
        self._deadline = time.monotonic() + deadline_seconds
        self._code: grpc.StatusCode | None = None

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def is_active(self) -> bool:
        return self.time_remaining() > 0

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        raise _Aborted(f"{code.name}: {details}")

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        pass

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class _CapturingServer:
    """Receives ``add_*Servicer_to_server`` registrations and keeps the method handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        for method, handler in handlers.items():
            self.handlers[method] = handler.unary_unary


def load_handlers(package: str) -> dict[str, Callable[..., Any]]:
    """The servicer methods of ``package`` (``recognition_service`` / ``liveness_service``), engine loaded."""
    config = importlib.import_module(f"{package}.config")
    server_module = importlib.import_module(f"{package}.server")
    settings = config.Settings.from_env()
    slot: EngineSlot[Any] = EngineSlot()
    slot.set(server_module.load_engine(settings))
    capturing = _CapturingServer()
    server_module.add_servicers(capturing, slot, settings)
    return capturing.handlers


def top_functions(session: Any, calls: int, limit: int = 15) -> list[dict[str, object]]:
    """Functions by self time (summed over every place they were called from), milliseconds per call."""
    totals: dict[tuple[str, str], float] = {}
    stack = [session.root_frame()]
    while stack:
        frame = stack.pop()
        if frame is None:
            continue
        stack.extend(frame.children)
        if frame.is_synthetic:
            continue  # "[self]"/"[await]" frames: already in their parent's total_self_time
        key = (frame.function or "?", f"{frame.file_path_short or ''}:{frame.line_no or ''}")
        totals[key] = totals.get(key, 0.0) + frame.total_self_time
    ordered = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:limit]
    whole = sum(totals.values()) or 1.0
    return [
        {
            "function": function,
            "where": where,
            "self_ms_per_call": round(seconds * 1000 / calls, 1),
            "share": round(seconds / whole, 3),
        }
        for (function, where), seconds in ordered
    ]


def profile(name: str, call: Callable[[], object], calls: int, out_name: str) -> dict[str, object]:
    call()  # warm-up outside the profile
    durations = []
    profiler = Profiler(interval=0.001)
    profiler.start()
    for _ in range(calls):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    session = profiler.stop()
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    path = report.RESULTS_DIR / f"{out_name}_{name}.txt"
    path.write_text(text)
    return {
        "stage": name,
        "calls": calls,
        "latency": report.summarise_ms(durations),
        "top_self_time": top_functions(session, calls),
        "call_tree": str(path.relative_to(report.RESULTS_DIR.parent.parent)),
    }


_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class AuthWebFlow:
    """Register, enroll and log in through auth-web's real app, in process, like the browser does."""

    def __init__(self) -> None:
        from auth_web import context, create_app

        self.app = create_app()
        self.username = f"profile{secrets.token_hex(4)}"
        self.password = secrets.token_urlsafe(16)
        # The page films between the challenge and the POST, and auth-web refuses a capture that arrives sooner
        # than its frames took (CAPTURE_TOO_EARLY). Instead of sleeping (which the profiler would sample), the
        # challenge store's clock skips that time.
        self.skipped = 0.0
        with self.app.app_context():
            context.challenges().clock = lambda: time.time() + self.skipped

    def _film(self, capture: list[Any]) -> None:
        """The time the page spends filming ``capture``, skipped on the challenge store's clock."""
        times = relative_times(capture)
        self.skipped += (times[-1] - times[0]) / 1000 + 0.05

    def _token(self, client: Any, path: str) -> str:
        response = client.get(path)
        match = _CSRF_META.search(response.get_data(as_text=True))
        if response.status_code != 200 or match is None:
            raise RuntimeError(f"GET {path}: HTTP {response.status_code}, no CSRF token")
        return match.group(1)

    @staticmethod
    def _capture_form(capture: list[Any]) -> dict[str, Any]:
        return {
            "frame_times_ms": json.dumps(relative_times(capture)),
            "frames": [
                (io.BytesIO(frame.jpeg), f"frame{index}.jpg", "image/jpeg") for index, frame in enumerate(capture)
            ],
        }

    def enroll(self, capture: list[Any]) -> None:
        client = self.app.test_client()
        token = self._token(client, "/register")
        form = {"csrf_token": token, "username": self.username, "password": self.password, "confirm": self.password}
        response = client.post("/register", data=form)
        if response.status_code != 302:
            raise RuntimeError(f"register: HTTP {response.status_code}")
        token = self._token(client, "/enroll")
        nonce = client.post("/api/enroll/challenge", json={}, headers={"X-CSRFToken": token}).get_json()["nonce"]
        self._film(capture)
        response = client.post(
            "/api/enroll", data={"nonce": nonce, **self._capture_form(capture)}, headers={"X-CSRFToken": token}
        )
        if response.status_code != 200:
            raise RuntimeError(f"enroll: HTTP {response.status_code}: {response.get_data(as_text=True)[:200]}")

    def login(self, capture: list[Any]) -> bool:
        client = self.app.test_client()
        token = self._token(client, "/login")
        challenge = client.post(
            "/api/login/challenge", json={"username": self.username}, headers={"X-CSRFToken": token}
        ).get_json()
        self._film(capture)
        response = client.post(
            "/api/login",
            data={"nonce": challenge["nonce"], "password": self.password, **self._capture_form(capture)},
            headers={"X-CSRFToken": token},
        )
        return response.status_code == 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--start-ms", type=int, default=-1, help="start of the capture (default: a blink window)")
    parser.add_argument("--auth-web", action="store_true", help="also profile auth-web's login flow (needs the stack)")
    parser.add_argument("--note", default="")
    parser.add_argument("--name", default="profile")
    args = parser.parse_args(argv)

    machine = report.machine_details(contention_note=args.note)
    scenario = build_scenario(args.clip)
    recognition = load_handlers("recognition_service")
    liveness = load_handlers("liveness_service")

    encode = recognition["Encode"](
        recognition_pb2.EncodeRequest(images=[frame.jpeg for frame in scenario.enroll]), DirectContext()
    )
    templates = [recognition_pb2.Template(embedding=list(face.embedding)) for face in encode.faces if face.embedding]
    challenge = [liveness_pb2.Action.Value(f"ACTION_{CHALLENGE_ACTION}")]

    def check_request(capture):  # type: ignore[no-untyped-def]
        return liveness_pb2.CheckRequest(
            frames=[frame.jpeg for frame in capture], challenge=challenge, frame_times_ms=relative_times(capture)
        )

    capture = None
    if args.start_ms >= 0:
        capture = [frame for frame in scenario.login_pool if frame.time_ms >= args.start_ms][:LOGIN_FRAMES]
    else:
        for window in scenario.login_windows(LOGIN_FRAMES, stride=6):
            if liveness["Check"](check_request(window), DirectContext()).live:
                capture = window
                break
        capture = capture or scenario.login_pool[:LOGIN_FRAMES]
    verify_request = recognition_pb2.VerifyRequest(frames=[frame.jpeg for frame in capture], templates=templates)

    stages = {
        "recognition_verify": lambda: recognition["Verify"](verify_request, DirectContext()),
        "liveness_check": lambda: liveness["Check"](check_request(capture), DirectContext()),
    }
    if args.auth_web:
        flow = AuthWebFlow()
        flow.enroll(scenario.enroll)
        if not flow.login(capture):
            print("warning: the profiled auth-web login is refused; its profile is of a refused login")
        stages["auth_web_login_flow"] = lambda: flow.login(capture)
    results = [profile(stage, call, args.calls, args.name) for stage, call in stages.items()]
    # auth-web's flow includes waiting for the two services; "slowest" compares the service stages.
    service_stages = [result for result in results if result["stage"] != "auth_web_login_flow"]
    slowest = max(service_stages, key=lambda result: result["latency"]["median_ms"])["stage"]  # type: ignore[index]

    data = {
        "benchmark": "profile",
        "machine": machine,
        "clip": args.clip,
        "capture_start_ms": capture[0].time_ms,
        "frames": LOGIN_FRAMES,
        "slowest_stage": slowest,
        "stages": results,
    }
    parts = [
        f"In-process pyinstrument profiles (1 ms sampling) of the real servicer handlers on one 8-frame capture of "
        f"`{args.clip}` (from {capture[0].time_ms} ms), {args.calls} calls each after a warm-up; single-threaded, "
        f"no gRPC transport. Slowest service stage: **{slowest}**. auth-web's flow includes its wait for the two "
        "services (`lock.acquire`: the parallel gRPC futures); the rest of its time is its own.",
    ]
    for result in results:
        latency = result["latency"]
        parts.append(
            f"\n## {result['stage']} — median {latency['median_ms']} ms per call "  # type: ignore[index]
            f"(full tree: `{result['call_tree']}`)\n"
        )
        parts.append(
            report.markdown_table(
                ["function", "where", "self ms/call", "share"],
                [
                    [row["function"], row["where"], row["self_ms_per_call"], row["share"]]
                    for row in result["top_self_time"]  # type: ignore[attr-defined]
                ],
            )
        )
    json_path, md_path = report.write_result(args.name, "Profile of the login stages", data, "\n".join(parts))
    print("\n".join(parts))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
