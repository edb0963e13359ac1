"""Observability of the real stack (gateway, auth-web under gunicorn, both gRPC services), started the way
``make run`` starts it (tests/e2e/stack.py): one register → enroll → login run over HTTP with real video frames,
then

- every service's metrics endpoint exposes the documented series with the login counted;
- the login's request id (made by the gateway, returned to the client) is in the log lines of the gateway,
  auth-web and both gRPC services;
- no password, session cookie, CSRF token, embedding or image bytes appear anywhere in the logs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from localrun.settings import RunSettings
from tests.e2e.stack import Stack

pytestmark = pytest.mark.skipif(
    RunSettings.from_env({}).nginx is None, reason="nginx is not installed (.ci/run installs it)"
)

PASSWORD = "observable horse battery 42"
VIDEO = "video/liveportrait/d9.mp4"  # person A: a man with glasses who blinks (~0.5 s and ~6.5 s)
ENROLL_START_S, LOGIN_START_S = 0.0, 6.0
FRAMES, FPS = 10, 6.0
FRAME_TIMES = [round(i * 1000 / FPS) for i in range(FRAMES)]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
LOG_LINE = re.compile(r"^\[([a-z-]+)\]\s+(\{.*\})\s*$")
LIVENESS_CHECK = "/faceauth.liveness.v1.LivenessService/Check"
RECOGNITION_VERIFY = "/faceauth.recognition.v1.RecognitionService/Verify"
RECOGNITION_ENCODE = "/faceauth.recognition.v1.RecognitionService/Encode"


def sample_frames(path: Path, start_s: float) -> list[bytes]:
    """What the capture page posts: FRAMES frames at FPS, 640x480 JPEG."""
    capture = cv2.VideoCapture(str(path))
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    wanted = {round((start_s + i / FPS) * source_fps) for i in range(FRAMES)}
    frames: list[bytes] = []
    index = 0
    while len(frames) < FRAMES:
        ok, image = capture.read()
        if not ok:
            break
        if index in wanted:
            scale = min(640 / image.shape[1], 480 / image.shape[0])
            resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
            canvas = np.zeros((480, 640, 3), np.uint8)
            top, left = (480 - resized.shape[0]) // 2, (640 - resized.shape[1]) // 2
            canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
            frames.append(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        index += 1
    capture.release()
    assert len(frames) == FRAMES, f"{path} has too few frames from {start_s}s"
    return frames


@dataclass
class Run:
    """What the register → enroll → login run produced, and every secret it handled."""

    stack: Stack
    metrics_listen: dict[str, str]
    login_request_id: str = ""
    secrets: set[str] = field(default_factory=set)
    metrics: dict[str, str] = field(default_factory=dict)

    @property
    def log_text(self) -> str:
        """Everything the stack's processes have written so far (one ``[name] line`` per line)."""
        return self.stack.log_tail(characters=50_000_000)

    def log_lines(self) -> list[tuple[str, dict]]:
        lines = []
        for raw in self.log_text.splitlines():
            match = LOG_LINE.match(raw)
            if match:
                try:
                    lines.append((match.group(1), json.loads(match.group(2))))
                except json.JSONDecodeError:
                    continue
        return lines


class Client:
    """The capture page's HTTP conversation through the gateway; remembers the CSRF tokens and cookies seen."""

    def __init__(self, base_url: str, seen: set[str]) -> None:
        # The run's self-signed certificate for localhost.
        self.http = httpx.Client(base_url=base_url, verify=False, timeout=120)  # noqa: S501
        self.seen = seen
        self.csrf = ""

    def page(self, path: str) -> httpx.Response:
        response = self.http.get(path)
        assert response.status_code == 200, (path, response.status_code)
        match = CSRF_META.search(response.text)
        assert match, f"no CSRF token on {path}"
        self.csrf = match.group(1)
        self.seen.add(self.csrf)
        self._remember_cookies()
        return response

    def _remember_cookies(self) -> None:
        self.seen.update(cookie.value for cookie in self.http.cookies.jar if len(cookie.value or "") >= 8)

    def post_json(self, path: str, payload: dict) -> httpx.Response:
        response = self.http.post(path, json=payload, headers={"X-CSRFToken": self.csrf})
        self._remember_cookies()
        return response

    def post_capture(self, path: str, nonce: str, frames: list[bytes], password: str | None = None) -> httpx.Response:
        data = {"nonce": nonce, "frame_times_ms": json.dumps(FRAME_TIMES)}
        if password is not None:
            data["password"] = password
        files = [("frames", (f"frame-{i}.jpg", frame, "image/jpeg")) for i, frame in enumerate(frames)]
        time.sleep(FRAME_TIMES[-1] / 1000)  # as long as filming them took (auth-web refuses a capture too early)
        response = self.http.post(path, data=data, files=files, headers={"X-CSRFToken": self.csrf})
        self._remember_cookies()
        return response


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, test_data: Path) -> Iterator[Run]:
    metrics_listen = {
        "auth-web": f"127.0.0.1:{free_port()}",
        "liveness": f"127.0.0.1:{free_port()}",
        "recognition": f"127.0.0.1:{free_port()}",
    }
    var_dir = tmp_path_factory.mktemp("observability")
    stack = Stack(
        var_dir / "stack.log",
        var_dir / "var",
        {
            "AUTH_CHALLENGE_ACTIONS": "BLINK",
            "AUTH_CHALLENGE_LENGTH": "1",
            "AUTH_CAPTURE_COUNTDOWN_SECONDS": "0",
            # This test is about metrics and logs, not the screen flash (test_face_login.py and the e2e tier run
            # it): fixed frames, so the flash is off on both sides.
            "AUTH_FLASH": "false",
            "LIVENESS_CHECKS": "sanity,passive,active",
            "AUTH_WEB_METRICS_LISTEN": metrics_listen["auth-web"],
            "LIVENESS_METRICS_LISTEN": metrics_listen["liveness"],
            "RECOGNITION_METRICS_LISTEN": metrics_listen["recognition"],
            # Two recognition processes: their numbers must add up on one endpoint (multiprocess mode).
            "RECOGNITION_WORKERS": "2",
        },
    )
    result = Run(stack, metrics_listen, secrets={PASSWORD})
    try:
        stack.start()
    except Exception as error:
        stack.stop()
        pytest.fail(f"the stack did not start: {error}\n{stack.log_tail()}")
    try:
        enroll_frames = sample_frames(test_data / VIDEO, ENROLL_START_S)
        login_frames = sample_frames(test_data / VIDEO, LOGIN_START_S)
        username = f"obs{free_port()}"

        # Register (signed in afterwards) and enroll.
        person = Client(stack.base_url, result.secrets)
        person.page("/register")
        registered = person.http.post(
            "/register",
            data={"username": username, "password": PASSWORD, "confirm": PASSWORD, "csrf_token": person.csrf},
        )
        assert registered.status_code in (200, 302, 303), registered.text[:500]
        person.page("/enroll")
        challenge = person.post_json("/api/enroll/challenge", {})
        assert challenge.status_code == 200, challenge.text
        enrolled = person.post_capture("/api/enroll", challenge.json()["nonce"], enroll_frames)
        assert enrolled.status_code == 200, enrolled.text

        # A wrong password first (a refused decision with a reason), then the real login in a fresh browser.
        visitor = Client(stack.base_url, result.secrets)
        visitor.page("/login")
        nonce = visitor.post_json("/api/login/challenge", {"username": username}).json()["nonce"]
        refused = visitor.post_capture("/api/login", nonce, login_frames, "not the password 123")
        assert refused.status_code == 401, refused.text

        visitor.page("/login")
        nonce = visitor.post_json("/api/login/challenge", {"username": username}).json()["nonce"]
        login = visitor.post_capture("/api/login", nonce, login_frames, PASSWORD)
        assert login.status_code == 200, login.text
        result.login_request_id = login.headers.get("X-Request-ID", "")
        visitor.page("/account")  # signed in: the rotated session cookie is remembered too

        for name, listen in metrics_listen.items():
            result.metrics[name] = httpx.get(f"http://{listen}/metrics", timeout=10).text
        time.sleep(0.5)  # the log pumps write the last lines of the calls
        yield result
    finally:
        stack.stop()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def value(text: str, name: str, **labels: str) -> float:
    return sum(v for sample_labels, v in samples(text, name) if labels.items() <= sample_labels.items())


# ---- metrics --------------------------------------------------------------------------------------------


def test_auth_web_metrics_count_the_login(run: Run) -> None:
    text = run.metrics["auth-web"]
    assert value(text, "faceauth_http_requests_total", endpoint="api.login_attempt", method="POST", status="200") >= 1
    assert value(text, "faceauth_http_requests_total", endpoint="api.login_attempt", status="401") >= 1
    assert value(text, "faceauth_http_request_seconds_count", endpoint="api.login_attempt") >= 2
    assert value(text, "faceauth_login_decisions_total", result="success", reason="OK") == 1
    assert value(text, "faceauth_login_decisions_total", result="failure", reason="BAD_PASSWORD") == 1
    assert value(text, "faceauth_enrollments_total", result="success", reason="OK") == 1
    # Enrollment, the refused login (the face is checked whatever the password was) and the accepted one.
    assert value(text, "faceauth_grpc_client_request_seconds_count", dependency="liveness", method="Check") == 3
    assert value(text, "faceauth_grpc_client_request_seconds_count", dependency="recognition", method="Verify") == 2
    assert value(text, "faceauth_grpc_client_request_seconds_count", dependency="recognition", method="Encode") == 1
    # Declared even while nothing happened, so dashboards and alerts have a series from the start.
    assert samples(text, "faceauth_lockouts_total")
    assert value(text, "faceauth_grpc_client_errors_total") == 0
    # Process metrics of the gunicorn master and its workers, each with its pid.
    pids = {labels["pid"] for labels, _ in samples(text, "process_resident_memory_bytes")}
    assert len(pids) >= 3, pids
    # The app's port does not expose them (only the metrics port does; the gateway proxies the app port).
    assert httpx.get(f"{run.stack.base_url}/metrics", verify=False).status_code == 404  # noqa: S501


def test_liveness_metrics_have_stages_frames_and_rpcs(run: Run) -> None:
    text = run.metrics["liveness"]
    # Enrollment, the refused login and the accepted one (a refused login's face is checked too).
    assert value(text, "faceauth_grpc_server_requests_total", method=LIVENESS_CHECK, code="OK") == 3
    assert value(text, "faceauth_grpc_server_request_seconds_count", method=LIVENESS_CHECK) == 3
    for stage in ("decode", "detection", "landmarks", "cnn"):
        assert value(text, "faceauth_inference_seconds_count", stage=stage) >= 1, stage
    assert value(text, "faceauth_frames_per_request_count", method="Check") == 3
    assert value(text, "faceauth_frames_per_request_sum", method="Check") == 3 * FRAMES
    assert samples(text, "process_cpu_seconds_total")


def test_recognition_metrics_add_up_across_two_workers(run: Run) -> None:
    text = run.metrics["recognition"]
    assert value(text, "faceauth_grpc_server_requests_total", method=RECOGNITION_VERIFY, code="OK") == 2
    assert value(text, "faceauth_grpc_server_requests_total", method=RECOGNITION_ENCODE, code="OK") == 1
    for stage in ("decode", "detection", "landmarks", "embedding"):
        assert value(text, "faceauth_inference_seconds_count", stage=stage) >= 1, stage
    assert value(text, "faceauth_frames_per_request_sum", method="Verify") == 2 * FRAMES
    assert value(text, "faceauth_frames_per_request_sum", method="Encode") == FRAMES
    pids = {labels["pid"] for labels, _ in samples(text, "process_cpu_seconds_total")}
    assert len(pids) == 3, pids  # the supervisor and its two workers


# ---- request id -----------------------------------------------------------------------------------------


def test_the_login_request_id_is_in_every_services_logs(run: Run) -> None:
    request_id = run.login_request_id
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id  # nginx's $request_id
    lines = run.log_lines()
    tagged = [(name, line) for name, line in lines if line.get("request_id") == request_id]
    services = {line.get("service") for _, line in tagged} | {name for name, _ in tagged if name == "gateway"}
    assert {"gateway", "auth-web", "liveness-service", "recognition-service"} <= services, services
    events = {(line.get("service"), line.get("event")) for _, line in tagged}
    assert ("auth-web", "audit") in events and ("auth-web", "request") in events
    assert ("liveness-service", "rpc") in events and ("liveness-service", "liveness_checked") in events
    assert ("recognition-service", "rpc") in events and ("recognition-service", "verified") in events
    # Every line a model service writes while serving one of auth-web's calls carries the caller's id
    # (health probes of the run command come without one).
    for _, line in lines:
        if str(line.get("method", "")).startswith("/grpc.health."):
            continue
        if line.get("event") in ("rpc", "liveness_checked", "verified", "encoded"):
            assert line.get("request_id") not in (None, "", "-"), line


def test_every_service_line_is_a_json_object_with_the_envelope(run: Run) -> None:
    lines = run.log_lines()
    by_service = {name for name, _ in lines}
    assert {"auth-web", "liveness", "recognition", "gateway"} <= by_service, by_service
    for name, line in lines:
        if name == "gateway":
            continue
        assert {"ts", "level", "service", "request_id", "event"} <= line.keys(), line
    # gunicorn's own lines are JSON too (no plain-text "[INFO] Booting worker" lines).
    assert not re.search(r"^\[auth-web\]\s+\[\d{4}-", run.log_text, re.M)
    assert any(line.get("logger") == "gunicorn.error" for name, line in lines if name == "auth-web")


# ---- secrets --------------------------------------------------------------------------------------------


def test_no_secret_embedding_or_image_in_the_logs(run: Run) -> None:
    text = run.log_text
    assert len(run.secrets) >= 4  # the password, CSRF tokens, session cookies
    for secret in run.secrets:
        assert secret not in text, f"a secret ({secret[:4]}…) is in the logs"
    # An embedding: a long list of floats.
    assert not re.search(r"(-?\d+\.\d+(?:e-?\d+)?,\s*){20,}", text)
    # Image bytes: base64 runs, a base64 JPEG header, raw or escaped JPEG markers.
    assert not re.search(r"[A-Za-z0-9+/]{120,}={0,2}", text)
    assert "/9j/" not in text
    assert "\xff\xd8\xff" not in text and "\\xff\\xd8" not in text and "\\u00ff\\u00d8" not in text
