"""docker-compose.yml for real (Podman): every service healthy, the API through the gateway's published TLS port
(register, enroll, login with frames posted the way the capture page and bench/login_load.py post them),
metrics, one request id in every service's log, data kept across `restart` and `down` + `up`, a scaled
recognition-service. The tests run in file order against the session's one stack (conftest.py)."""

from __future__ import annotations

import json
import re
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from .conftest import MEASURED
from .stack import LONG_RUNNING, ComposeProject

PASSWORD = "compose tier passphrase"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
# Person A of auth-web's integration tier: d9.mp4 (a man who blinks), one stretch to enroll, another to log in.
VIDEO = "video/liveportrait/d9.mp4"
ENROLL_START_S = 0.0
LOGIN_START_S = 6.0
FRAMES, FPS = 10, 6.0
FRAME_TIMES_MS = [round(i * 1000 / FPS) for i in range(FRAMES)]


def sample_frames(path: Path, start_s: float) -> list[bytes]:
    """FRAMES frames at FPS from ``start_s``, letterboxed to 640×480 JPEG like the browser's capture."""
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
            canvas = np.zeros((480, 640, 3), dtype=np.uint8)
            top, left = (480 - resized.shape[0]) // 2, (640 - resized.shape[1]) // 2
            canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
            encoded_ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert encoded_ok
            frames.append(encoded.tobytes())
        index += 1
    capture.release()
    assert len(frames) == FRAMES, f"{path} has too few frames from {start_s} s"
    return frames


@dataclass
class Api:
    """The HTTP API as the capture page uses it, through the gateway: CSRF token, challenge, multipart frames."""

    client: httpx.Client
    csrf: str = ""

    def page(self, path: str) -> httpx.Response:
        response = self.client.get(path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:300]}"
        match = CSRF_META.search(response.text)
        assert match, f"no CSRF token on {path}"
        self.csrf = match.group(1)
        # What a browser sends with the page's own requests: Flask-WTF checks the referrer over HTTPS.
        self.client.headers["Referer"] = str(response.url)
        return response

    def post_json(self, path: str, payload: dict[str, object]) -> httpx.Response:
        return self.client.post(path, json=payload, headers={"X-CSRFToken": self.csrf})

    def submit(self, path: str, nonce: str, frames: list[bytes], password: str | None = None) -> httpx.Response:
        # A capture takes as long as its frames span; a POST sooner than that is refused as too early.
        time.sleep(FRAME_TIMES_MS[len(frames) - 1] / 1000 + 0.3)
        data = {"nonce": nonce, "frame_times_ms": json.dumps(FRAME_TIMES_MS[: len(frames)])}
        if password is not None:
            data["password"] = password
        files = [("frames", (f"frame{i}.jpg", frame, "image/jpeg")) for i, frame in enumerate(frames)]
        return self.client.post(path, data=data, files=files, headers={"X-CSRFToken": self.csrf})

    def register(self, username: str) -> None:
        self.page("/register")
        response = self.client.post(
            "/register",
            data={"csrf_token": self.csrf, "username": username, "password": PASSWORD, "confirm": PASSWORD},
            follow_redirects=True,
        )
        assert response.status_code == 200, f"register: {response.status_code} {response.text[:300]}"
        assert response.url.path == "/enroll", f"register ended on {response.url}"

    def enroll(self, frames: list[bytes]) -> httpx.Response:
        self.page("/enroll")
        challenge = self.post_json("/api/enroll/challenge", {})
        assert challenge.status_code == 200, challenge.text[:300]
        return self.submit("/api/enroll", challenge.json()["nonce"], frames)

    def login(self, username: str, frames: list[bytes], password: str = PASSWORD) -> httpx.Response:
        """As the page does it: the password step before the camera, then the face step."""
        self.client.cookies.clear()
        self.page("/login")
        checked = self.post_json("/api/login/password", {"username": username, "password": password})
        if checked.status_code != 200:
            return checked
        challenge = self.post_json("/api/login/challenge", {"username": username})
        assert challenge.status_code == 200, challenge.text[:300]
        assert challenge.json()["actions"] == ["BLINK"], challenge.json()
        return self.submit("/api/login", challenge.json()["nonce"], frames)


def client_for(stack: ComposeProject) -> httpx.Client:
    # Verified TLS: the gateway must present the certificate mounted from GATEWAY_TLS_DIR.
    verify = ssl.create_default_context(cafile=stack.certificate)
    return httpx.Client(base_url=f"https://127.0.0.1:{stack.https_port}", verify=verify, timeout=120.0)


@dataclass
class Account:
    username: str
    login_frames: list[bytes]
    still_frames: list[bytes]
    enrolled: dict[str, object] = field(default_factory=dict)


@pytest.fixture(scope="session")
def account(stack: ComposeProject, test_data: Path) -> Iterator[Account]:
    """A user registered and enrolled through the gateway, with real frames."""
    username = f"compose{secrets.token_hex(3)}"
    with client_for(stack) as client:
        api = Api(client)
        api.register(username)
        enrolled = api.enroll(sample_frames(test_data / VIDEO, ENROLL_START_S))
        assert enrolled.status_code == 200, f"enroll: {enrolled.status_code} {enrolled.text[:500]}"
        login_frames = sample_frames(test_data / VIDEO, LOGIN_START_S)
        yield Account(username, login_frames, [login_frames[0]] * FRAMES, enrolled.json())


def accepted_login(stack: ComposeProject, account: Account) -> httpx.Response:
    with client_for(stack) as client:
        response = Api(client).login(account.username, account.login_frames)
    assert response.status_code == 200 and response.json().get("ok"), (
        f"login refused: {response.status_code} {response.text[:500]}"
    )
    return response


def test_every_service_is_healthy_and_the_one_shots_exited_0(stack: ComposeProject) -> None:
    health = stack.health()
    assert {service: set(health.get(service, [])) for service in LONG_RUNNING} == {
        service: {"healthy"} for service in LONG_RUNNING
    }
    assert stack.exit_code("certs") == 0
    assert stack.exit_code("migrate") == 0
    published = {}
    for container in stack.containers():
        ports = stack.inspect(container["Id"])["NetworkSettings"]["Ports"] or {}
        bound = {port: hosts for port, hosts in ports.items() if hosts}
        if bound:
            published[container["Labels"]["com.docker.compose.service"]] = bound
    assert list(published) == ["gateway"], f"only the gateway may publish ports: {published}"


def test_the_login_page_over_tls(stack: ComposeProject) -> None:
    with client_for(stack) as client:
        page = client.get("/login")
    assert page.status_code == 200
    assert CSRF_META.search(page.text)
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert re.fullmatch(r"[0-9a-f]{32}", page.headers["x-request-id"])
    plain = httpx.get(f"http://127.0.0.1:{stack.http_port}/login", timeout=30)
    assert plain.status_code in (301, 308)
    assert plain.headers["location"] == f"https://127.0.0.1:{stack.https_port}/login"


def test_enrolled_user_logs_in_with_frames_through_the_gateway(stack: ComposeProject, account: Account) -> None:
    assert account.enrolled.get("ok") is True, account.enrolled
    accepted_login(stack, account)


def test_wrong_password_and_a_still_photo_are_refused(stack: ComposeProject, account: Account) -> None:
    with client_for(stack) as client:
        api = Api(client)
        wrong = api.login(account.username, account.login_frames, password="not the password at all")
        still = api.login(account.username, account.still_frames)
    for response in (wrong, still):
        assert response.status_code == 401, f"{response.status_code} {response.text[:300]}"
        assert response.json().get("ok") is not True


def test_one_request_id_is_in_every_service_log(stack: ComposeProject, account: Account) -> None:
    # auth-web honours the gateway's X-Request-ID (and X-Forwarded-For) only from an address that the name
    # `gateway` resolves to (auth_web/proxies.py); a name that does not resolve yet is asked again after 1 s, so
    # the gateway is trusted within a second or two of existing (it used to take up to 30 s: issue 20).
    time.sleep(max(0.0, stack.ready_at + 2 - time.monotonic()))
    request_id = accepted_login(stack, account).headers["x-request-id"]
    for service in ("gateway", "auth-web", "liveness-service", "recognition-service"):
        deadline = time.monotonic() + 30
        while request_id not in stack.logs(service):
            assert time.monotonic() < deadline, f"{request_id} is not in {service}'s log"
            time.sleep(2)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def fetch_metrics(stack: ComposeProject, url: str) -> str:
    # The metrics ports are on the internal network only: read them from inside, as Prometheus would.
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    return stack.exec("auth-web", "python", "-c", script)


def test_every_service_serves_its_metrics(stack: ComposeProject) -> None:
    auth_web = fetch_metrics(stack, "http://127.0.0.1:9100/metrics")
    liveness = fetch_metrics(stack, "http://liveness-service:9101/metrics")
    recognition = fetch_metrics(stack, "http://recognition-service:9102/metrics")
    assert _metric(auth_web, "faceauth_login_decisions_total", result="success") >= 1, auth_web[-2000:]
    assert _metric(liveness, "faceauth_grpc_server_requests_total", code="OK") >= 1, liveness[-2000:]
    assert _metric(recognition, "faceauth_grpc_server_requests_total", code="OK") >= 1, recognition[-2000:]


def test_restart_keeps_users_templates_and_sessions(stack: ComposeProject, account: Account) -> None:
    with client_for(stack) as client:
        accepted = Api(client).login(account.username, account.login_frames)
        assert accepted.status_code == 200 and accepted.json().get("ok"), accepted.text[:300]
        started = time.monotonic()
        stack.compose("restart", timeout=600)
        stack.wait_healthy(deadline=started + 600)
        stack.wait_gateway_reaches_auth_web()
        MEASURED["restart, to every service healthy (s)"] = round(time.monotonic() - started, 1)
        # The session lives in Redis (append-only file on its volume): still signed in after the restart.
        account_page = client.get("/account")
        assert account_page.status_code == 200, account_page.status_code
        assert account.username in account_page.text
    accepted_login(stack, account)


def test_down_and_up_keeps_users_and_templates(stack: ComposeProject, account: Account) -> None:
    stack.compose("down", "--timeout", "20", timeout=300)
    assert not stack.containers(all_states=True)
    MEASURED["up after down (warm images and volumes), to every service healthy (s)"] = round(stack.up(), 1)
    assert stack.exit_code("migrate") == 0
    accepted_login(stack, account)


def test_scaled_recognition_service_serves(stack: ComposeProject, account: Account) -> None:
    started = time.monotonic()
    stack.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "recognition-service=2", timeout=600)
    while (
        set(stack.health().get("recognition-service", [])) != {"healthy"}
        or len(stack.containers("recognition-service")) != 2
    ):
        assert time.monotonic() - started < 600, f"two healthy recognition replicas: {stack.health()}"
        time.sleep(2)
    MEASURED["second recognition-service replica healthy (s)"] = round(time.monotonic() - started, 1)
    accepted_login(stack, account)
    # The first replica stops: logins go on, served by the second one (auth-web balances over every address
    # of the name and drops the one that went away).
    replicas = sorted(stack.containers("recognition-service"), key=lambda c: c["Names"][0])
    first = replicas[0]["Id"]
    stack.stop_container(first)
    deadline = time.monotonic() + 120
    while True:
        with client_for(stack) as client:
            response = Api(client).login(account.username, account.login_frames)
        if response.status_code == 200 and response.json().get("ok"):
            break
        assert response.status_code == 503, f"{response.status_code} {response.text[:300]}"
        assert time.monotonic() < deadline, "no login served by the remaining replica within 120 s"
        time.sleep(10)  # within the per-username login rate limit
