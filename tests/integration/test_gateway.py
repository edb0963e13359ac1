"""The nginx gateway, started from the same template the local run and the image use.

A small stand-in upstream (it echoes what it received) lets these tests see exactly what the gateway
forwards; the last tests put the real auth-web app behind it (security headers on every path, /readyz).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from localrun.certificates import ensure_self_signed_certificate
from localrun.gateway import (
    GATEWAY_DIR,
    GATEWAY_TEMPLATE,
    gateway_values,
    nginx_command,
    render_gateway_config,
    write_gateway_config,
)
from localrun.network import port_is_free, tcp_answers

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)")

MiB = 1024 * 1024
STATIC_BODY = ("/* faceauth test asset */\n" + "const frames = [];\n" * 400).encode()
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


class _StandInHandler(BaseHTTPRequestHandler):
    """Echoes method, path, headers and body size as JSON; a few paths mimic auth-web's answers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _echo(self, received: int) -> None:
        body = json.dumps(
            {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "received": received}
        ).encode()
        self._send(200, body, "application/json", {"Cache-Control": "no-store"})

    def do_GET(self) -> None:
        if self.path.startswith("/static/"):
            self._send(200, STATIC_BODY, "text/javascript", {"Cache-Control": "no-cache"})
        elif self.path == "/answers-503":
            self._send(503, b'{"error": "auth-web says unavailable"}', "application/json")
        elif self.path == "/own-csp":
            self._send(200, b"<p>hi</p>", "text/html", {"Content-Security-Policy": "default-src 'none'"})
        else:
            self._echo(0)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        remaining, received = length, 0
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        self._echo(received)


@pytest.fixture(scope="module")
def stand_in_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _StandInHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Gateway:
    def __init__(self, https_port: int, http_port: int, process: subprocess.Popen, config: Path) -> None:
        self.https_port, self.http_port, self.process, self.config = https_port, http_port, process, config

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


def _wait_listening(port: int, process: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "nginx exited early"
        if tcp_answers("127.0.0.1", port, timeout=0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nginx not listening on {port}")


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The local run's self-signed certificate (valid for localhost and 127.0.0.1)."""
    return ensure_self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def start_gateway(tmp_path_factory: pytest.TempPathFactory, tls_pair: tuple[Path, Path]) -> Iterator:
    """Render the template for a given upstream list and settings, `nginx -t` it, start nginx."""
    started: list[Gateway] = []
    cert, key = tls_pair

    def start(upstreams: list[str], **extra: str) -> Gateway:
        runtime_dir = tmp_path_factory.mktemp("gateway")
        https_port, http_port = free_port(), free_port()
        values = gateway_values(
            runtime_dir,
            cert,
            key,
            runtime_dir / "upstream.conf",
            https_listen=f"127.0.0.1:{https_port}",
            http_listen=f"127.0.0.1:{http_port}",
            public_https_port=https_port,
            access_log=str(runtime_dir / "access.log"),
            extra=extra,
        )
        config = write_gateway_config(runtime_dir, upstreams, values)
        check = subprocess.run(nginx_command(NGINX, config, "-t"), capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        assert "test is successful" in check.stderr
        with (runtime_dir / "nginx.out").open("w") as output:
            process = subprocess.Popen(nginx_command(NGINX, config), stdout=output, stderr=subprocess.STDOUT)
        gateway = Gateway(https_port, http_port, process, config)
        started.append(gateway)
        _wait_listening(https_port, process)
        return gateway

    yield start
    for gateway in started:
        gateway.process.terminate()
        gateway.process.wait(timeout=10)
        assert port_is_free("127.0.0.1", gateway.https_port)


@pytest.fixture(scope="module")
def gateway(start_gateway, stand_in_upstream: str) -> Gateway:
    return start_gateway([stand_in_upstream], GATEWAY_LOGIN_RATE="60r/m", GATEWAY_LOGIN_BURST="3")


@pytest.fixture(scope="module")
def client(tls_pair: tuple[Path, Path]) -> Iterator[httpx.Client]:
    # Verifying against the self-signed certificate also proves it is valid for 127.0.0.1.
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls_pair[0])), timeout=10) as client:
        yield client


def test_rendered_config_leaves_no_placeholder_and_uses_the_given_paths(gateway: Gateway) -> None:
    text = gateway.config.read_text()
    assert "${" not in text
    assert "client_max_body_size 25m;" in text
    assert f"listen 127.0.0.1:{gateway.https_port} ssl;" in text


def test_proxies_to_the_upstream_with_forwarding_headers(gateway: Gateway, client: httpx.Client) -> None:
    response = client.get(f"{gateway.base}/some/page?q=1", headers={"Host": "faceauth.example"})
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["path"] == "/some/page?q=1"
    forwarded = {name.lower(): value for name, value in echoed["headers"].items()}
    assert forwarded["x-forwarded-proto"] == "https"
    assert forwarded["x-forwarded-for"] == "127.0.0.1"
    assert forwarded["host"] == "faceauth.example"


def test_security_headers_on_https(gateway: Gateway, client: httpx.Client) -> None:
    response = client.get(f"{gateway.base}/login")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "camera=(self)" in response.headers["permissions-policy"]
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "server" not in response.headers or "nginx/" not in response.headers["server"]


def test_upstream_csp_is_kept_rather_than_doubled(gateway: Gateway, client: httpx.Client) -> None:
    response = client.get(f"{gateway.base}/own-csp")
    assert response.headers.get_list("content-security-policy") == ["default-src 'none'"]


def test_request_id_is_generated_forwarded_and_returned(gateway: Gateway, client: httpx.Client) -> None:
    first = client.get(f"{gateway.base}/a", headers={"X-Request-ID": "client-chosen-id-123"})
    second = client.get(f"{gateway.base}/b")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids), ids
    assert ids[0] != ids[1]
    # Not trusted by default: the client's value is replaced by the gateway's.
    forwarded = {k.lower(): v for k, v in first.json()["headers"].items()}
    assert forwarded["x-request-id"] == ids[0]
    log_line = json.loads(
        next(line for line in (gateway.config.parent / "access.log").read_text().splitlines() if ids[0] in line)
    )
    assert log_line["request_id"] == ids[0] and log_line["path"] == "/a" and log_line["status"] == 200


def test_trusted_request_id_is_passed_through(start_gateway, stand_in_upstream: str, client: httpx.Client) -> None:
    trusted = start_gateway([stand_in_upstream], GATEWAY_TRUST_REQUEST_ID="on")
    response = client.get(f"{trusted.base}/x", headers={"X-Request-ID": "upstream-proxy-id-42"})
    assert response.headers["x-request-id"] == "upstream-proxy-id-42"
    assert {k.lower(): v for k, v in response.json()["headers"].items()}["x-request-id"] == "upstream-proxy-id-42"
    # A value that does not look like an id is not trusted.
    odd = client.get(f"{trusted.base}/x", headers={"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])


def test_http_redirects_to_https_without_hsts(gateway: Gateway, client: httpx.Client) -> None:
    response = client.get(f"http://127.0.0.1:{gateway.http_port}/login?next=%2Fadmin", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == f"https://127.0.0.1:{gateway.https_port}/login?next=%2Fadmin"
    assert "strict-transport-security" not in response.headers
    health = client.get(f"http://127.0.0.1:{gateway.http_port}/_gateway/healthz")
    assert health.status_code == 200


def _multipart_frames(total_bytes: int, frame_bytes: int = MiB) -> dict:
    files, remaining, index = [], total_bytes, 0
    while remaining > 0:
        size = min(frame_bytes, remaining)
        files.append(("frames", (f"frame{index}.jpg", b"\xff" * size, "image/jpeg")))
        remaining -= size
        index += 1
    return {"files": files, "data": {"nonce": "n", "frame_times_ms": "[]"}}


def test_sixteen_full_frames_pass_the_body_limit(gateway: Gateway, client: httpx.Client) -> None:
    response = client.post(f"{gateway.base}/api/enroll", **_multipart_frames(16 * MiB))
    assert response.status_code == 200
    assert response.json()["received"] > 16 * MiB


def test_bodies_over_25_mib_get_413(gateway: Gateway, client: httpx.Client) -> None:
    api = client.post(f"{gateway.base}/api/enroll", **_multipart_frames(26 * MiB))
    assert api.status_code == 413
    assert api.headers["content-type"].startswith("application/json")
    assert api.json()["error"] == "too_large"
    page = client.post(f"{gateway.base}/enroll", **_multipart_frames(26 * MiB))
    assert page.status_code == 413
    assert "too large" in page.text and "<html" in page.text
    assert page.headers["x-content-type-options"] == "nosniff"


def test_static_assets_are_compressed_and_cached(gateway: Gateway, client: httpx.Client) -> None:
    response = client.get(f"{gateway.base}/static/js/app.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == STATIC_BODY  # httpx decoded it
    assert "max-age=3600" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    with client.stream("GET", f"{gateway.base}/static/js/app.js", headers={"Accept-Encoding": "gzip"}) as raw:
        compressed = b"".join(raw.iter_raw())
    assert gzip.decompress(compressed) == STATIC_BODY
    assert len(compressed) < len(STATIC_BODY) / 5
    # Pages and API answers are never compressed (BREACH).
    page = client.get(f"{gateway.base}/login", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in page.headers


def test_upstream_errors_pass_through_unchanged(gateway: Gateway, client: httpx.Client) -> None:
    response = client.get(f"{gateway.base}/answers-503")
    assert response.status_code == 503
    assert response.json() == {"error": "auth-web says unavailable"}


def test_login_endpoints_are_rate_limited_per_address(gateway: Gateway, tls_pair: tuple[Path, Path]) -> None:
    # From 127.0.0.2 so that the other tests' requests (from 127.0.0.1) are not counted.
    context = ssl.create_default_context(cafile=str(tls_pair[0]))
    transport = httpx.HTTPTransport(verify=context, local_address="127.0.0.2")
    with httpx.Client(transport=transport, timeout=10) as other_address:
        statuses = [other_address.post(f"{gateway.base}/api/login/challenge", json={}).status_code for _ in range(8)]
        assert statuses[:4] == [200] * 4  # one plus the burst of 3
        assert 429 in statuses[4:]
        limited = other_address.post(f"{gateway.base}/api/login/challenge", json={})
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        page = other_address.get(f"{gateway.base}/login")
        assert page.status_code == 429 and "Too many attempts" in page.text
        # Other paths are not limited.
        assert other_address.get(f"{gateway.base}/elsewhere").status_code == 200


def test_own_page_when_auth_web_is_down(start_gateway, client: httpx.Client) -> None:
    dead = start_gateway([f"127.0.0.1:{free_port()}"])
    page = client.get(f"{dead.base}/login")
    assert page.status_code == 502
    assert page.headers["content-type"].startswith("text/html")
    assert "Temporarily unavailable" in page.text
    assert 'href="/_gateway/gateway.css"' in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert re.fullmatch(r"[0-9a-f]{32}", page.headers["x-request-id"])
    css = client.get(f"{dead.base}/_gateway/gateway.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    api = client.post(f"{dead.base}/api/login", data={"nonce": "x"})
    assert api.status_code == 503
    assert api.json()["error"] == "unavailable"
    # The error pages themselves are not reachable directly.
    assert client.get(f"{dead.base}/_gateway/unavailable.html").status_code == 404


@pytest.mark.skipif(shutil.which("envsubst") is None, reason="envsubst (gettext-base) is not installed")
def test_image_entrypoint_renders_the_same_config_as_the_local_run(tmp_path: Path, tls_pair: tuple[Path, Path]) -> None:
    """gateway/docker-entrypoint.sh (envsubst) and the local run (localrun.gateway) fill the template identically."""
    cert, key = tls_pair
    runtime_dir = tmp_path / "runtime"
    upstream = tmp_path / "upstream.conf"
    upstream.write_text("server 127.0.0.1:9;\n")
    values = gateway_values(
        runtime_dir,
        cert,
        key,
        upstream,
        https_listen=f"127.0.0.1:{free_port()}",
        http_listen=f"127.0.0.1:{free_port()}",
        public_https_port=443,
        extra={"GATEWAY_LOGIN_RATE": "5r/s", "GATEWAY_TRUST_REQUEST_ID": "on"},
    )
    # The image's entrypoint includes its own rendered copy of the upstream list (the DNS server filled in, see
    # gateway/docker-entrypoint.sh); everything else is the same text.
    rendered_upstream = runtime_dir / "upstream.conf"
    expected = render_gateway_config(
        GATEWAY_TEMPLATE.read_text(), {**values, "GATEWAY_UPSTREAM_CONF": str(rendered_upstream)}
    )
    env = {
        "PATH": f"{os.environ['PATH']}:{Path(NGINX).parent}",
        "GATEWAY_TEMPLATE": str(GATEWAY_TEMPLATE),
        **values,
    }
    result = subprocess.run(
        ["sh", str(GATEWAY_DIR / "docker-entrypoint.sh"), "-t"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert (runtime_dir / "nginx.conf").read_text() == expected
    assert rendered_upstream.read_text() == upstream.read_text()

    # A missing certificate is named, not left to an nginx error.
    env["GATEWAY_TLS_KEY"] = str(tmp_path / "absent.key")
    result = subprocess.run(
        ["sh", str(GATEWAY_DIR / "docker-entrypoint.sh"), "-t"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "absent.key" in result.stderr


# -- one copy of each security header, with the real auth-web behind the gateway ------------------------

# The gateway owns these (auth-web's copies are hidden); the CSP is auth-web's when it sends one.
ONE_COPY_HEADERS = (
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-opener-policy",
    "x-request-id",
)


@pytest.fixture(scope="module")
def real_auth_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Flask app (its own after_request security headers) served in a thread: SQLite, local Redis,
    no gRPC services (so /readyz answers 503, another path to check)."""
    import secrets

    import redis
    from werkzeug.serving import make_server

    from auth_web import create_app
    from auth_web.config import Settings

    prefix = f"faceauth_test_{secrets.token_hex(6)}:"
    settings = Settings(
        secret_key="gateway-test-secret-key-0123456789abcdef",
        database_url=f"sqlite:///{tmp_path_factory.mktemp('auth-web') / 'db.sqlite3'}",
        redis_prefix=prefix,
        liveness_target=f"127.0.0.1:{free_port()}",
        recognition_target=f"127.0.0.1:{free_port()}",
        health_deadline_seconds=0.2,
        proxy_count=1,
    )
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _assert_one_copy_each(response: httpx.Response, what: str) -> None:
    counts = {name: len(response.headers.get_list(name)) for name in ONE_COPY_HEADERS}
    assert counts == dict.fromkeys(ONE_COPY_HEADERS, 1), (what, response.status_code, counts)


def test_every_path_has_each_security_header_exactly_once(
    start_gateway, real_auth_web: str, client: httpx.Client
) -> None:
    """Regression (issue 13): /static/ had `X-Frame-Options: DENY, DENY` and two Referrer-Policy values (its own
    proxy_hide_header lines replaced the server level's, so auth-web's copies went through beside the gateway's)."""
    front = start_gateway([real_auth_web], GATEWAY_LOGIN_RATE="600r/m", GATEWAY_LOGIN_BURST="50")
    dead = start_gateway([f"127.0.0.1:{free_port()}"])
    requests = [
        ("GET", front, "/", {}),
        ("GET", front, "/login", {}),
        ("GET", front, "/login?next=/account", {}),
        ("GET", front, "/register", {}),
        ("GET", front, "/static/css/app.css", {}),
        ("GET", front, "/static/js/capture.js", {"headers": {"Accept-Encoding": "gzip"}}),
        ("GET", front, "/static/img/logo.svg", {}),
        ("GET", front, "/static/absent.css", {}),  # auth-web's 404 under /static/
        ("GET", front, "/no/such/page", {}),  # auth-web's error page
        ("GET", front, "/api/no/such", {}),  # its JSON 404
        ("POST", front, "/api/login/challenge", {"json": {"username": "alice"}}),  # 400: no CSRF token
        ("POST", front, "/api/login", {"data": {"nonce": "x"}}),
        ("GET", front, "/api/openapi.json", {}),
        ("GET", front, "/healthz", {}),
        ("GET", front, "/readyz", {}),  # 503: no gRPC services
        ("POST", front, "/api/enroll", _multipart_frames(26 * MiB)),  # the gateway's JSON 413
        ("POST", front, "/enroll", _multipart_frames(26 * MiB)),  # its HTML 413
        ("GET", front, "/_gateway/gateway.css", {}),
        ("GET", front, "/_gateway/unavailable.html", {}),  # internal: 404
        ("GET", dead, "/login", {}),  # the gateway's 502 page
        ("POST", dead, "/api/login", {"data": {"nonce": "x"}}),  # its JSON 503
        ("GET", dead, "/static/css/app.css", {}),
    ]
    statuses = set()
    for method, gateway, path, options in requests:
        response = client.request(method, f"{gateway.base}{path}", **options)
        statuses.add(response.status_code)
        _assert_one_copy_each(response, f"{method} {path}")
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert {200, 400, 404, 413, 502, 503} <= statuses, statuses


def test_gateway_rate_limit_page_has_each_security_header_once(
    start_gateway, real_auth_web: str, tls_pair: tuple[Path, Path]
) -> None:
    limited = start_gateway([real_auth_web], GATEWAY_LOGIN_RATE="1r/m", GATEWAY_LOGIN_BURST="1")
    context = ssl.create_default_context(cafile=str(tls_pair[0]))
    transport = httpx.HTTPTransport(verify=context, local_address="127.0.0.3")
    with httpx.Client(transport=transport, timeout=10) as other_address:
        responses = [other_address.get(f"{limited.base}/login") for _ in range(3)]
        responses += [other_address.post(f"{limited.base}/api/login/challenge", json={}) for _ in range(2)]
    assert 429 in {r.status_code for r in responses}
    for response in responses:
        _assert_one_copy_each(response, f"{response.request.method} {response.request.url.path}")


def test_readyz_through_the_gateway_tells_a_public_client_only_ok(
    start_gateway, real_auth_web: str, tls_pair: tuple[Path, Path]
) -> None:
    """A client that is not loopback (127.0.0.4 here, forwarded by the gateway) gets no per-dependency state."""
    front = start_gateway([real_auth_web])
    context = ssl.create_default_context(cafile=str(tls_pair[0]))
    transport = httpx.HTTPTransport(verify=context, local_address="127.0.0.4")
    with httpx.Client(transport=transport, timeout=10) as public:
        response = public.get(f"{front.base}/readyz")
    assert response.status_code == 503
    assert response.json() == {"ok": False}
