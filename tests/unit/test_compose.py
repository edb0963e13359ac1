"""docker-compose.yml, the Dockerfiles, .dockerignore and .env.example, checked statically (no Docker
engine on the build machines): `docker-compose config` accepts the file, the production rules hold
(health checks, start order, one published service, secrets required, replicas possible), and every
Dockerfile only references stages and paths that exist in the build context."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
REQUIRED = {
    "FACEAUTH_SECRET_KEY": "x" * 40,
    "FACEAUTH_TEMPLATE_KEY": "k" * 43,
    "POSTGRES_PASSWORD": "pgpassword",
    "REDIS_PASSWORD": "redispassword",
    "GATEWAY_TLS_DIR": "/etc/faceauth-tls",
}
SCALABLE = ("auth-web", "liveness-service", "recognition-service")
GRPC_PORTS = {"liveness-service": 50051, "recognition-service": 50052}
DOCKERFILES = {
    "recognition-service": "recognition-service/Dockerfile",
    "liveness-service": "liveness-service/Dockerfile",
    "auth-web": "auth-web/Dockerfile",
    "gateway": "gateway/Dockerfile",
    "demo-app": "examples/demo-app/Dockerfile",
}
DOCKER_COMPOSE = shutil.which("docker-compose")
# Read by one-off commands (`docker compose run -e ...`), deliberately not in a long-running container's env.
CLI_ONLY = {"FACEAUTH_PASSWORD"}


def _compose_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    env.update(values)
    return env


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


# ---- docker-compose config -------------------------------------------------------------------------------


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed (.ci/run installs it)")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config", "-q"],
        env=_compose_env(**REQUIRED),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed (.ci/run installs it)")
@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_docker_compose_refuses_to_run_without_each_secret(missing: str) -> None:
    values = {k: v for k, v in REQUIRED.items() if k != missing}
    result = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config", "-q"],
        env=_compose_env(**values),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert missing in result.stderr


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed (.ci/run installs it)")
def test_resolved_config_wires_the_secrets_into_the_services() -> None:
    result = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config"],
        env=_compose_env(**REQUIRED),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    resolved = yaml.safe_load(result.stdout)["services"]
    auth_env = resolved["auth-web"]["environment"]
    assert auth_env["FACEAUTH_ENV"] == "production"
    assert auth_env["FACEAUTH_SECRET_KEY"] == REQUIRED["FACEAUTH_SECRET_KEY"]
    # The template key reaches auth-web and the migration (which encrypts existing rows with it).
    assert auth_env["FACEAUTH_TEMPLATE_KEY"] == REQUIRED["FACEAUTH_TEMPLATE_KEY"]
    assert resolved["migrate"]["environment"]["FACEAUTH_TEMPLATE_KEY"] == REQUIRED["FACEAUTH_TEMPLATE_KEY"]
    assert auth_env["DATABASE_URL"] == "postgresql+psycopg2://faceauth:pgpassword@postgres:5432/faceauth"
    assert auth_env["REDIS_URL"] == "redis://:redispassword@redis:6379/0"
    assert resolved["migrate"]["environment"]["DATABASE_URL"] == auth_env["DATABASE_URL"]
    published = {(p["target"], str(p["published"])) for p in resolved["gateway"]["ports"]}
    assert published == {(8443, "443"), (8080, "80")}


# ---- production rules ------------------------------------------------------------------------------------


ONE_SHOT = ("migrate", "certs", "demo-register")


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        assert "healthcheck" in service, name
        assert service["healthcheck"]["test"], name
        assert service.get("restart") == "unless-stopped", name


def test_grpc_services_are_probed_through_grpc_health(services: dict[str, dict]) -> None:
    for name, port in GRPC_PORTS.items():
        test = services[name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "faceauth_common.healthcheck"], test
        assert test[4] == f"127.0.0.1:{port}"
        listen = next(e for e in services[name]["environment"] if e.endswith(f":{port}") and "_LISTEN=" in e)
        assert listen.split("=", 1)[1] == f"0.0.0.0:{port}"


def test_start_order_waits_for_health_and_for_the_migration(services: dict[str, dict]) -> None:
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert rule == {"condition": expected}, (name, dependency, rule)
    assert set(services["auth-web"]["depends_on"]) == {
        "certs",
        "migrate",
        "redis",
        "liveness-service",
        "recognition-service",
    }
    for name in GRPC_PORTS:
        assert set(services[name]["depends_on"]) == {"certs"}
    assert set(services["migrate"]["depends_on"]) == {"postgres"}
    assert set(services["gateway"]["depends_on"]) == {"auth-web"}
    assert services["migrate"]["command"] == ["python", "-m", "auth_web", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["image"] == services["auth-web"]["image"]


def _environment(service: dict) -> dict[str, str]:
    return dict(entry.split("=", 1) if "=" in entry else (entry, "") for entry in service["environment"])


def test_grpc_is_mutual_tls_with_one_certificate_volume_per_service(compose: dict, services: dict[str, dict]) -> None:
    """Each Python service mounts only its own certificates; the CA key only the one-shot that signs; the
    server certificates name the hosts auth-web dials; plaintext is refused (production)."""
    certs = services["certs"]
    assert certs["command"][:4] == ["python", "-m", "faceauth_common.tls", "ensure"]
    options = dict(argument.split("=", 1) for argument in certs["command"][4:])
    written = {volume.split(":")[0]: volume.split(":")[1] for volume in certs["volumes"]}
    assert written["grpc-ca"] == options["--ca-dir"]
    auth_env = _environment(services["auth-web"])
    for name, prefix, short in (
        ("liveness-service", "LIVENESS", "liveness"),
        ("recognition-service", "RECOGNITION", "recognition"),
        ("auth-web", None, "auth-web"),
    ):
        service, env = services[name], _environment(services[name])
        assert written[f"grpc-tls-{short}"] == options[f"--{short}-dir"]
        assert service["volumes"] == [f"grpc-tls-{short}:/etc/faceauth/grpc-tls:ro"], name
        assert f"grpc-tls-{short}" in compose["volumes"]
        assert env["GRPC_TLS_CA"] == "/etc/faceauth/grpc-tls/ca.crt"
        assert env["GRPC_CLIENT_TLS_CERT"] == "/etc/faceauth/grpc-tls/client.crt", name  # auth-web / health probe
        assert env["GRPC_CLIENT_TLS_KEY"] == "/etc/faceauth/grpc-tls/client.key", name
        if prefix:
            assert env[f"{prefix}_TLS_CERT"] == "/etc/faceauth/grpc-tls/server.crt"
            assert env[f"{prefix}_TLS_KEY"] == "/etc/faceauth/grpc-tls/server.key"
            target_host = auth_env[f"{prefix}_TARGET"].rsplit(":", 1)[0]
            assert options[f"--{short}-host"] == target_host == name
        assert env["FACEAUTH_ENV"] == "production", f"{name} would accept GRPC_INSECURE"
    assert all("grpc-ca" not in str(s.get("volumes", [])) for n, s in services.items() if n != "certs")


def test_only_the_gateway_publishes_ports_and_services_can_scale(services: dict[str, dict]) -> None:
    # The demo profile's app publishes its own port: a demo, not part of the production stack.
    published = [name for name, service in services.items() if "ports" in service and not _demo(service)]
    assert published == ["gateway"]
    for name, service in services.items():
        assert "container_name" not in service, name
        assert "network_mode" not in service, name
    for name in SCALABLE:
        assert "build" in services[name] and "ports" not in services[name]


def test_only_the_gateway_reaches_outside_networks(compose: dict, services: dict[str, dict]) -> None:
    assert compose["networks"]["backend"]["internal"] is True
    for name, service in services.items():
        expected = ["frontend", "backend"] if name == "gateway" else ["backend"]
        if name == "demo-app":
            expected = ["frontend"]  # reaches faceauth through the gateway's public URL, never the backend
        assert service["networks"] == expected, name


def _demo(service: dict) -> bool:
    return "demo" in (service.get("profiles") or [])


def test_postgres_and_redis_use_official_images_and_named_volumes(compose: dict, services: dict[str, dict]) -> None:
    for name, data_dir, variable in (
        ("postgres", "/var/lib/postgresql/data", "POSTGRES_IMAGE"),
        ("redis", "/data", "REDIS_IMAGE"),
    ):
        # An official image unless the operator names another (the offline bases, scripts/build-base-images.sh).
        match = re.fullmatch(rf"\$\{{{variable}:-([^}}]+)\}}", services[name]["image"])
        assert match, f"{name}'s image is not ${{{variable}:-official image}}"
        image = match.group(1)
        assert "/" not in image.split(":")[0], f"{image} is not an official image"
        volume, target = services[name]["volumes"][0].split(":", 1)
        assert target == data_dir
        assert volume in compose["volumes"]


def test_secrets_are_required_wherever_they_are_used() -> None:
    text = COMPOSE_FILE.read_text()
    for name in REQUIRED:
        uses = re.findall(rf"\$\{{{name}(.?.?)", text)
        assert uses, name
        assert all(use == ":?" for use in uses), f"{name} used without ${{{name}:?message}}"


def test_python_services_build_from_the_repository_root(services: dict[str, dict]) -> None:
    for name, service in services.items():
        if "build" not in service:
            continue
        assert service["build"]["context"] == "."
        assert (REPO_ROOT / service["build"]["dockerfile"]).is_file(), name


def test_base_image_build_arguments_default_to_the_dockerfiles_own(services: dict[str, dict]) -> None:
    """PYTHON_IMAGE / NGINX_IMAGE in .env choose the bases; unset, compose passes the Dockerfile's own default."""
    for name, service in services.items():
        if "build" not in service:
            continue
        dockerfile_args, _stages = parse_dockerfile(REPO_ROOT / service["build"]["dockerfile"])
        args = service["build"]["args"]
        assert set(args) == {"PYTHON_IMAGE"} or set(args) == {"NGINX_IMAGE"}, name
        for arg, value in args.items():
            assert value == f"${{{arg}:-{dockerfile_args[arg]}}}", f"{name}: {arg}"


def test_env_example_lists_every_variable() -> None:
    example = (REPO_ROOT / ".env.example").read_text()
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in compose["services"].items():
        if name in ("postgres", "redis"):  # the official images' own variables, set in the file
            continue
        env = service.get("environment") or []
        names |= {entry.split("=", 1)[0] for entry in env} if isinstance(env, list) else set(env)
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", (REPO_ROOT / "docs/configuration.md").read_text(), re.M))
    missing = sorted(name for name in names | documented if not re.search(rf"\b{name}\b", example))
    assert not missing, f".env.example does not mention {missing}"
    for name in REQUIRED:
        assert re.search(rf"^{name}=$", example, re.M), f"{name} must be an empty required line"


def _documented(section: str) -> set[str]:
    """The variables in one section of docs/configuration.md."""
    text = (REPO_ROOT / "docs/configuration.md").read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section {section!r} in docs/configuration.md"
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", match.group(1), re.M))


@pytest.mark.parametrize("service", ["liveness-service", "recognition-service", "auth-web"])
def test_every_documented_setting_reaches_its_service(services: dict[str, dict], service: str) -> None:
    """A variable set in .env must not be silently ignored: compose passes each documented one on."""
    passed = {entry.split("=", 1)[0] for entry in services[service]["environment"]}
    missing = sorted((_documented(service) | _documented("All services")) - passed - CLI_ONLY)
    assert not missing, f"docker-compose.yml does not pass {missing} to {service}"


# ---- Dockerfiles -----------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages); continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if not pending and raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            logical.append(line)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, base))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def copy_sources(rest: str) -> tuple[str | None, list[str]]:
    """(the --from stage or None, the source paths) of a COPY instruction."""
    words = shlex.split(rest)
    source_stage = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            source_stage = flag.split("=", 1)[1]
    return source_stage, words[:-1]


def dockerignore_patterns() -> list[tuple[bool, list[str]]]:
    patterns = []
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").strip("/").split("/")))
    return patterns


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_segments_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pattern[0]) and _segments_match(pattern[1:], path[1:])


def is_ignored(relative: str, patterns: list[tuple[bool, list[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder covers what is inside."""
    parts = relative.strip("/").split("/")
    ignored = False
    for negated, pattern in patterns:
        if any(_segments_match(pattern, parts[:end]) for end in range(1, len(parts) + 1)):
            ignored = not negated
    return ignored


def test_dockerignore_matcher_follows_docker_rules() -> None:
    patterns = dockerignore_patterns()
    assert is_ignored("recognition-service/tests/unit/test_x.py", patterns)
    assert is_ignored(".venv/bin/python", patterns)
    assert is_ignored("common/faceauth_common/__pycache__/x.pyc", patterns)
    assert not is_ignored(".env.example", patterns)
    assert not is_ignored("common/faceauth_common/logs.py", patterns)


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_dockerfile_stages_and_copied_paths_exist(service: str) -> None:
    _, stages = parse_dockerfile(REPO_ROOT / DOCKERFILES[service])
    assert len(stages) >= 2, "multi-stage build expected"
    names = [stage.name for stage in stages]
    assert len(set(names)) == len(names)
    patterns = dockerignore_patterns()
    for index, stage in enumerate(stages):
        for keyword, rest in stage.instructions:
            assert keyword != "ADD", "use COPY"
            if keyword != "COPY":
                continue
            source_stage, sources = copy_sources(rest)
            if source_stage is not None:
                assert source_stage in names[:index], (
                    f"{stage.name}: COPY --from={source_stage} is not an earlier stage"
                )
                continue
            for source in sources:
                path = REPO_ROOT / source
                assert path.exists(), f"{DOCKERFILES[service]}: COPY source {source} does not exist"
                assert not is_ignored(source, patterns), f"{source} is excluded by .dockerignore"
                assert "tests" not in Path(source).parts, f"{source}: no tests in images"


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_final_stage_runs_unprivileged_with_a_healthcheck(service: str) -> None:
    args, stages = parse_dockerfile(REPO_ROOT / DOCKERFILES[service])
    final = stages[-1]
    users = [rest for keyword, rest in final.instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the final stage must switch to an unprivileged user"
    assert any(keyword == "HEALTHCHECK" for keyword, _ in final.instructions)
    if service != "gateway":
        assert args["PYTHON_IMAGE"] == "python:3.11-slim"
        assert all(stage.base == "python:3.11-slim" for stage in stages)


@pytest.mark.parametrize("service", ["recognition-service", "liveness-service", "auth-web"])
def test_python_images_run_the_service_module_and_bake_in_dependencies(service: str) -> None:
    _, stages = parse_dockerfile(REPO_ROOT / DOCKERFILES[service])
    build, final = stages[0], stages[-1]
    cmd = next(rest for keyword, rest in reversed(final.instructions) if keyword == "CMD")
    argv = yaml.safe_load(cmd)
    assert argv[:2] == ["python", "-m"]
    package = argv[2]
    assert (REPO_ROOT / service / package / "__main__.py").is_file(), f"{package} has no __main__"
    runs = " ".join(rest for keyword, rest in build.instructions if keyword == "RUN")
    assert f"pip install -r {service}/requirements.txt" in runs
    assert "pip install --no-deps ./common ./" + service in runs
    if service == "recognition-service":
        assert f"pip install --no-deps -r {service}/requirements-nodeps.txt" in runs
    if service in GRPC_PORTS:
        # Model services prove at build time that their models load: the service reaches SERVING.
        assert f"python -m {package} &" in runs and f"healthcheck 127.0.0.1:{GRPC_PORTS[service]}" in runs


def test_gateway_image_uses_the_templates_files() -> None:
    _, stages = parse_dockerfile(REPO_ROOT / DOCKERFILES["gateway"])
    assert stages[-1].instructions[-2] == ("ENTRYPOINT", '["/usr/local/bin/faceauth-gateway"]')
    assert os.access(REPO_ROOT / "gateway" / "docker-entrypoint.sh", os.X_OK)
    # The image's upstream file names the compose service that auth-web runs as.
    upstream = (REPO_ROOT / "gateway" / "upstream.docker.conf").read_text()
    assert "server auth-web:8000 resolve;" in upstream
