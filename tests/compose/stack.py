"""docker-compose.yml run for real with Podman: preflight, base images, image builds, the compose project, health.

Podman stands in for Docker (tests/compose/README.md): ``podman build`` builds the four images from the project's
Dockerfiles, ``podman system service`` serves Docker's API on a socket of the run's own, and docker-compose 1.29
(Debian's) drives the project through it (podman-compose 1.0.3 starts a service before what it depends on is
healthy; docker-compose waits). Without systemd Podman runs no health checks by itself, so ``HealthTicker`` runs
each container's own check (``podman healthcheck run``) at the check's own interval, as Docker's daemon would.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from conftest import REPO_ROOT

HERE = Path(__file__).resolve().parent
CONTAINERS_CONF = HERE / "containers.conf"
OVERRIDE = HERE / "compose.test.yml"
BASE_IMAGE_SCRIPT = REPO_ROOT / "scripts" / "build-base-images.sh"
BASE_PREFIX = "localhost/faceauth-base"
BASE_IMAGES = {
    "PYTHON_IMAGE": f"{BASE_PREFIX}/python:3.11-bookworm",
    "NGINX_IMAGE": f"{BASE_PREFIX}/nginx:bookworm",
    "POSTGRES_IMAGE": f"{BASE_PREFIX}/postgres:15-bookworm",
    "REDIS_IMAGE": f"{BASE_PREFIX}/redis:7-bookworm",
}
IMAGE_TAG = "compose-test"
#: service image -> (Dockerfile, build argument naming its base)
IMAGES = {
    "liveness-service": ("liveness-service/Dockerfile", "PYTHON_IMAGE"),
    "recognition-service": ("recognition-service/Dockerfile", "PYTHON_IMAGE"),
    "auth-web": ("auth-web/Dockerfile", "PYTHON_IMAGE"),
    "gateway": ("gateway/Dockerfile", "NGINX_IMAGE"),
}
#: programs the tier needs, and the Debian package each comes from (.ci/run installs them)
TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "iptables": "iptables",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
    "openssl": "openssl",
    # Podman's network backend (containers.conf asks for it; Debian's podman does not pull it in)
    "/usr/lib/podman/netavark": "netavark",
    "/usr/lib/podman/aardvark-dns": "aardvark-dns",
}
# The machine's CA bundle: outbound HTTPS from RUN steps (pip) needs it here. Mounted into the build only, never
# copied into an image (the Python base's pip reads the system bundle at this path).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LONG_RUNNING = ("postgres", "redis", "liveness-service", "recognition-service", "auth-web", "gateway")
ONE_SHOT = ("certs", "migrate")


class StackError(AssertionError):
    """The stack could not be built, started or checked; the message says which step and why."""


def missing_tools() -> list[str]:
    return [f"{tool} (apt-get install {package})" for tool, package in TOOLS.items() if shutil.which(tool) is None]


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def run(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(command),
        cwd=REPO_ROOT,
        env=dict(env or engine_env()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise StackError(f"`{' '.join(command)}` exited {result.returncode}:\n{output}")
    return result


def image_exists(name: str) -> bool:
    return run(["podman", "image", "exists", name], check=False).returncode == 0


def ensure_base_images() -> float:
    """Build the offline base images (scripts/build-base-images.sh) when any is missing; the seconds it took."""
    if all(image_exists(image) for image in BASE_IMAGES.values()):
        return 0.0
    started = time.monotonic()
    env = engine_env()
    env["CONTAINER_ENGINE"] = "podman"
    run(["nice", "-n", "10", "bash", str(BASE_IMAGE_SCRIPT)], env=env, timeout=1200)
    return time.monotonic() - started


def build_images(log_dir: Path) -> dict[str, float]:
    """``podman build`` of every service image on the offline bases, reusing cached layers; seconds per image."""
    seconds: dict[str, float] = {}
    for service, (dockerfile, base_arg) in IMAGES.items():
        command = [
            "nice", "-n", "10", "podman", "build", "--format", "docker", "--layers", "--network", "host",
            "--build-arg", f"{base_arg}={BASE_IMAGES[base_arg]}",
            "-f", dockerfile, "-t", f"faceauth/{service}:{IMAGE_TAG}",
        ]  # fmt: skip
        if HOST_CA_BUNDLE.is_file():
            command += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        started = time.monotonic()
        result = run([*command, "."], timeout=1800, check=False)
        seconds[service] = time.monotonic() - started
        (log_dir / f"build-{service}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(
                f"building {service} ({dockerfile}) failed, exit {result.returncode}:\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
    return seconds


def image_size_mb(name: str) -> float:
    raw = run(["podman", "image", "inspect", "--format", "{{.Size}}", name]).stdout.strip()
    return int(raw) / 1e6


@contextlib.contextmanager
def docker_api(socket_dir: Path) -> Iterator[str]:
    """``podman system service`` on a socket of this run's own; yields the DOCKER_HOST value."""
    socket = socket_dir / "podman.sock"
    log = (socket_dir / "podman-service.log").open("w")
    process = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        env=engine_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own session: a Ctrl-C or CI's timeout (SIGINT to the process group) must leave it serving until the
        # teardown has removed the project through it.
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                output = (socket_dir / "podman-service.log").read_text()[-2000:]
                raise StackError(f"podman system service did not open {socket}: {output}")
            time.sleep(0.2)
        yield f"unix://{socket}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _duration_seconds(nanoseconds: object, default: float) -> float:
    return int(nanoseconds) / 1e9 if isinstance(nanoseconds, int) and nanoseconds > 0 else default


class HealthTicker(threading.Thread):
    """Runs every running container's health check of one compose project at the check's interval (what Docker's
    daemon does, and Podman does only through systemd timers, absent here)."""

    def __init__(self, project: str) -> None:
        super().__init__(name=f"health-{project}", daemon=True)
        self.project = project
        self.stopped = threading.Event()
        self.last_run: dict[str, float] = {}
        self.intervals: dict[str, float] = {}

    def _containers(self) -> list[str]:
        result = run(
            ["podman", "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.project}"],
            check=False,
        )
        return result.stdout.split()

    def _interval(self, container: str) -> float | None:
        if container not in self.intervals:
            raw = run(["podman", "inspect", "--format", "{{json .Config.Healthcheck}}", container], check=False)
            try:
                check = json.loads(raw.stdout or "null")
            except json.JSONDecodeError:
                return None
            if not check or not check.get("Test") or check["Test"][0] == "NONE":
                self.intervals[container] = 0.0
            else:
                self.intervals[container] = _duration_seconds(check.get("Interval"), 30.0)
        return self.intervals[container] or None

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            now = time.monotonic()
            for container in self._containers():
                interval = self._interval(container)
                if interval is None or now - self.last_run.get(container, 0.0) < interval:
                    continue
                self.last_run[container] = now
                run(["podman", "healthcheck", "run", container], check=False, timeout=120)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=130)


@dataclass
class ComposeProject:
    """One compose project: docker-compose.yml + the tier's override, its own name, env file and ports."""

    name: str
    env_file: Path
    values: dict[str, str]
    docker_host: str
    log_dir: Path
    #: the gateway's (self-signed) certificate, which clients of the test verify the gateway against
    certificate: Path
    #: time.monotonic() when the last `up` had every service healthy
    ready_at: float = 0.0

    @property
    def https_port(self) -> int:
        return int(self.values["GATEWAY_HTTPS_PUBLISH"])

    @property
    def http_port(self) -> int:
        return int(self.values["GATEWAY_HTTP_PUBLISH"])

    def env(self) -> dict[str, str]:
        env = engine_env()
        # Only the project's own values: nothing from the caller's shell may reach the containers.
        for name in list(env):
            if name.startswith(("FACEAUTH_", "AUTH_", "LIVENESS_", "RECOGNITION_", "GATEWAY_", "GRPC_")):
                del env[name]
        env.update(self.values)
        env["DOCKER_HOST"] = self.docker_host
        env["COMPOSE_PROJECT_NAME"] = self.name
        return env

    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            "docker-compose", "--ansi", "never", "-p", self.name, "--env-file", str(self.env_file),
            "-f", str(REPO_ROOT / "docker-compose.yml"), "-f", str(OVERRIDE), *args,
        ]  # fmt: skip
        return run(command, env=self.env(), timeout=timeout, check=check)

    def containers(self, service: str | None = None, *, all_states: bool = False) -> list[dict]:
        command = ["podman", "ps", "--format", "json", "--filter", f"label=com.docker.compose.project={self.name}"]
        if service:
            command += ["--filter", f"label=com.docker.compose.service={service}"]
        if all_states:
            command.append("-a")
        return json.loads(run(command).stdout or "[]")

    def inspect(self, container: str) -> dict:
        return json.loads(run(["podman", "inspect", container]).stdout)[0]

    def container_id(self, service: str) -> str:
        found = self.containers(service)
        if not found:
            raise StackError(f"no running container of {service}")
        return found[0]["Id"]

    def up(self, *args: str, timeout: float = 900) -> float:
        """``up -d`` (docker-compose waits for every depends_on condition); then every service healthy."""
        started = time.monotonic()
        result = self.compose("up", "-d", "--no-build", *args, timeout=timeout, check=False)
        if result.returncode != 0:
            raise StackError(
                f"docker-compose up failed:\n{(result.stdout + result.stderr)[-3000:]}\n{self.logs_tail()}"
            )
        self.wait_healthy(deadline=started + timeout)
        self.wait_gateway_reaches_auth_web()
        self.ready_at = time.monotonic()
        return self.ready_at - started

    def health(self) -> dict[str, list[str]]:
        """Service -> the health status of each of its running containers."""
        states: dict[str, list[str]] = {}
        for container in self.containers():
            service = container["Labels"]["com.docker.compose.service"]
            status = self.inspect(container["Id"])["State"].get("Health", {}).get("Status", "none")
            states.setdefault(service, []).append(status)
        return states

    def wait_healthy(self, deadline: float) -> None:
        while True:
            states = self.health()
            if all(states.get(service) and set(states[service]) == {"healthy"} for service in LONG_RUNNING):
                return
            if time.monotonic() > deadline:
                raise StackError(f"not every service became healthy: {states}\n{self.logs_tail()}")
            time.sleep(2)

    def wait_gateway_reaches_auth_web(self, timeout: float = 60) -> None:
        """Until the gateway proxies to auth-web again: after auth-web got new addresses the gateway re-resolves
        them within 10 s (nginx `resolve`, or the entrypoint's reload on older nginx); meanwhile it answers 502."""
        deadline = time.monotonic() + timeout
        url = f"https://127.0.0.1:{self.https_port}/login"
        while True:
            try:
                verify = ssl.create_default_context(cafile=self.certificate)
                status = httpx.get(url, verify=verify, timeout=10).status_code
            except httpx.HTTPError as error:
                status = f"{type(error).__name__}"
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise StackError(f"the gateway answers {status} for {url}\n{self.logs_tail()}")
            time.sleep(1)

    def exit_code(self, service: str) -> int:
        found = self.containers(service, all_states=True)
        if not found:
            raise StackError(f"no container of the one-shot {service}")
        return int(self.inspect(found[0]["Id"])["State"]["ExitCode"])

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", *services, timeout=120, check=False).stdout

    def logs_tail(self, lines: int = 40) -> str:
        """The last lines of the log of each service that is not healthy (all services when every one is)."""
        states = self.health()
        failing = [service for service, status in states.items() if set(status) != {"healthy"}] or list(states)
        return "\n".join(
            self.compose("logs", "--no-color", f"--tail={lines}", service, timeout=120, check=False).stdout[-3000:]
            for service in failing
        )

    def exec(self, service: str, *command: str) -> str:
        return run(["podman", "exec", self.container_id(service), *command], timeout=60).stdout

    def stop_container(self, container: str) -> None:
        run(["podman", "stop", "-t", "20", container], timeout=60)

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.name}"
        found = {
            "containers": run(["podman", "ps", "-aq", "--filter", label], check=False).stdout.split(),
            "volumes": run(["podman", "volume", "ls", "-q", "--filter", label], check=False).stdout.split(),
            "networks": [
                name
                for name in run(["podman", "network", "ls", "--format", "{{.Name}}"], check=False).stdout.split()
                if name.startswith(f"{self.name}_")
            ],
        }
        return {kind: names for kind, names in found.items() if names}

    def remove_everything(self) -> dict[str, list[str]]:
        """``down -v``; then force-remove what is left; returns what ``down`` had left behind."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)
        left = self.leftovers()
        for container in left.get("containers", []):
            run(["podman", "rm", "-f", "-v", container], check=False)
        for volume in left.get("volumes", []):
            run(["podman", "volume", "rm", "-f", volume], check=False)
        for network in left.get("networks", []):
            run(["podman", "network", "rm", "-f", network], check=False)
        return left


def new_project_name() -> str:
    return f"facompose{secrets.token_hex(4)}"


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
