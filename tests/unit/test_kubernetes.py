"""deploy/kubernetes: every overlay rendered with kustomize (``kubectl kustomize``) and validated offline against
the Kubernetes API schemas (kubernetes-validate), then the invariants the manifests promise: probes, limits sized
from bench/results, non-root and read-only containers, Secrets only by reference (each one listed in
secrets.example.yaml and made by make_secrets.py), gRPC targets that are headless Services, autoscalers and
disruption budgets, and NetworkPolicies that admit exactly the intended paths (an evaluator asks who may reach whom).

kubectl is a hard requirement here (the test fails, never skips, without it): Debian's `kubernetes-client` or any
kubectl >= 1.14 renders these manifests (they use only kustomize fields v2.0 knows).
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes still supported by its maintainers when written, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
WORKLOADS = ("Deployment", "StatefulSet", "Job")
SECRET_NAMES = ("SECRET", "PASSWORD", "TEMPLATE_KEY", "DATABASE_URL", "REDIS_URL", "TOKEN")
MODEL_SERVICES = {"liveness": 50051, "recognition": 50052}


@functools.cache
def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: `apt-get install kubernetes-client` (Debian) renders the manifests")
    result = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kustomize failed for {overlay}: {result.stderr}"
    documents = [document for document in yaml.safe_load_all(result.stdout) if document]
    assert documents, f"{overlay} rendered nothing"
    return documents


def of_kind(documents: list[dict], *kinds: str) -> list[dict]:
    return [document for document in documents if document["kind"] in kinds]


def named(documents: list[dict], kind: str, name: str) -> dict:
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def matches(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist) against labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def documents(overlay: str) -> list[dict]:
    return render(overlay)


# ---- rendering and schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_for_the_kubernetes_api(documents: list[dict], version: str) -> None:
    errors = []
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{document['kind']}/{document['metadata']['name']}: {error.message}")
    assert not errors, "\n".join(errors)


def test_the_validator_rejects_what_it_should() -> None:
    """The schema check can fail: a misspelt field and a wrong type are caught (strict mode)."""
    deployment = json.loads(json.dumps(named(render("dev"), "Deployment", "auth-web")))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment = json.loads(json.dumps(named(render("dev"), "Deployment", "auth-web")))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_everything_lands_in_the_overlays_namespace(documents: list[dict], overlay: str) -> None:
    namespace = {"dev": "faceauth-dev", "prod": "faceauth"}[overlay]
    assert named(documents, "Namespace", namespace)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )
    outside = [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in documents
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != namespace
    ]
    assert not outside


def test_the_stores_run_in_the_cluster_only_in_dev(documents: list[dict], overlay: str) -> None:
    names = {w["metadata"]["name"] for w in of_kind(documents, *WORKLOADS)}
    base = {"gateway", "auth-web", "liveness", "recognition", "faceauth-migrate"}
    assert names == (base | {"postgres", "redis"} if overlay == "dev" else base)


# ---- containers ----------------------------------------------------------------------------------------------


def containers(documents: list[dict]) -> list[tuple[dict, dict]]:
    return [
        (workload, container)
        for workload in of_kind(documents, *WORKLOADS)
        for container in pod_spec(workload).get("initContainers", []) + pod_spec(workload)["containers"]
    ]


def test_every_long_running_container_has_probes(documents: list[dict]) -> None:
    missing = [
        f"{w['metadata']['name']}/{c['name']}: {probe}"
        for w, c in containers(documents)
        if w["kind"] != "Job"  # a one-shot migration has nothing to probe: it exits
        for probe in ("readinessProbe", "livenessProbe")
        if probe not in c
    ]
    assert not missing


def test_every_container_has_cpu_and_memory_requests_and_limits(documents: list[dict]) -> None:
    missing = [
        f"{w['metadata']['name']}/{c['name']}: {kind}.{resource}"
        for w, c in containers(documents)
        for kind in ("requests", "limits")
        for resource in ("cpu", "memory")
        if resource not in c.get("resources", {}).get(kind, {})
    ]
    assert not missing


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


def test_memory_is_sized_from_the_measured_resident_memory(documents: list[dict]) -> None:
    """Each pod's memory request covers what bench/results/memory_soak measured for what it runs (one model worker
    per pod; auth-web's master and 2 workers; nginx), and its limit leaves 50 % above that."""
    soak = json.loads((REPO_ROOT / "bench/results/memory_soak_contended.json").read_text())["services"]

    def worker_max(service: str) -> float:
        return max(p["max_mb"] for p in soak[service]["by_process"] if p["role"] == "worker")

    measured = {
        "liveness": worker_max("liveness"),
        "recognition": worker_max("recognition"),
        "auth-web": soak["auth-web"]["total"]["max_mb"],
        "gateway": soak["gateway"]["total"]["max_mb"],
    }
    for name, resident in measured.items():
        resources = pod_spec(named(documents, "Deployment", name))["containers"][0]["resources"]
        assert mebibytes(resources["requests"]["memory"]) >= resident, (name, resident)
        assert mebibytes(resources["limits"]["memory"]) >= 1.5 * resident, (name, resident)


def test_every_container_runs_unprivileged_on_a_read_only_root(documents: list[dict]) -> None:
    problems = []
    for workload, container in containers(documents):
        spec = pod_spec(workload)
        pod_context, context = spec.get("securityContext", {}), container.get("securityContext", {})
        where = f"{workload['metadata']['name']}/{container['name']}"
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot")
        if context.get("runAsUser", pod_context.get("runAsUser", 0)) == 0:
            problems.append(f"{where}: runAsUser is root or unset")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem")
        if context.get("privileged"):
            problems.append(f"{where}: privileged")
        if context.get("capabilities", {}).get("drop") != ["ALL"] or context.get("capabilities", {}).get("add"):
            problems.append(f"{where}: capabilities not dropped")
        if pod_context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccomp")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: service account token mounted")
        if any(spec.get(flag) for flag in ("hostNetwork", "hostPID", "hostIPC")):
            problems.append(f"{where}: host namespaces")
        if any("hostPath" in volume for volume in spec.get("volumes", [])):
            problems.append(f"{where}: hostPath volume")
    assert not problems


# ---- secrets -------------------------------------------------------------------------------------------------


def example_secrets() -> dict[str, set[str]]:
    documents = yaml.safe_load_all((DEPLOY / "secrets.example.yaml").read_text())
    return {d["metadata"]["name"]: set(d["data"]) for d in documents if d}


def referenced_secrets(documents: list[dict]) -> dict[str, set[str]]:
    """Secret name → the keys the workloads read: env secretKeyRefs, and the files of mounted Secrets that an
    env value (a path) or a probe's configuration points at."""
    wanted: dict[str, set[str]] = {}
    config = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(documents, "ConfigMap")}
    for workload, container in containers(documents):
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                wanted.setdefault(reference["name"], set()).add(reference["key"])
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        volumes.update({c["metadata"]["name"]: {} for c in workload["spec"].get("volumeClaimTemplates", [])})
        values = [v.get("value", "") for v in container.get("env", [])]
        for source in container.get("envFrom", []):
            values += list(config[source["configMapRef"]["name"]].values())
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "secret" not in volume:
                continue
            keys = wanted.setdefault(volume["secret"]["secretName"], set())
            prefix = mount["mountPath"].rstrip("/") + "/"
            keys.update(value[len(prefix) :] for value in values if value.startswith(prefix))
    return wanted


def test_no_secret_is_part_of_the_manifests(documents: list[dict]) -> None:
    assert not of_kind(documents, "Secret"), "Secrets are made by the operator (make_secrets.py), never rendered"
    literal = [
        f"{w['metadata']['name']}/{c['name']}: {v['name']}"
        for w, c in containers(documents)
        for v in c.get("env", [])
        if any(word in v["name"] for word in SECRET_NAMES) and "value" in v
    ]
    in_config = [
        f"{d['metadata']['name']}: {key}"
        for d in of_kind(documents, "ConfigMap")
        for key in d.get("data", {})
        if any(word in key for word in SECRET_NAMES)
    ]
    assert not literal and not in_config, literal + in_config


def test_every_secret_and_key_referenced_is_in_the_example(documents: list[dict]) -> None:
    example = example_secrets()
    wanted = referenced_secrets(documents)
    assert wanted, "no Secret referenced at all?"
    for name, keys in wanted.items():
        assert name in example, f"Secret {name} is not in secrets.example.yaml"
        assert keys <= example[name], f"{name}: keys {sorted(keys - example[name])} are not in the example"
    # The mTLS files each service is configured to read are among those found.
    assert wanted["faceauth-grpc-auth-web"] == {"ca.crt", "client.crt", "client.key"}
    for service in MODEL_SERVICES:
        assert wanted[f"faceauth-grpc-{service}"] == {"ca.crt", "server.crt", "server.key", "client.crt", "client.key"}


def test_every_config_map_referenced_exists(documents: list[dict]) -> None:
    present = {d["metadata"]["name"] for d in of_kind(documents, "ConfigMap")}
    for workload, container in containers(documents):
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in present
        for volume in pod_spec(workload).get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in present


def make_secrets(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    certificate, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    if not certificate.exists():
        certificate.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    command = [sys.executable, str(DEPLOY / "make_secrets.py"), "--gateway-cert", str(certificate)]
    command += ["--gateway-key", str(key), "--state-dir", str(tmp_path / "state"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_make_secrets_makes_exactly_what_the_overlay_reads(tmp_path: Path, overlay_name: str) -> None:
    namespace = {"dev": "faceauth-dev", "prod": "faceauth"}[overlay_name]
    stores = ["--dev"] if overlay_name == "dev" else ["--database-url", "postgresql+psycopg2://u:p@db:5432/f"]
    stores += [] if overlay_name == "dev" else ["--redis-url", "rediss://:p@cache:6380/0"]
    result = make_secrets(tmp_path, "--namespace", namespace, *stores)
    assert result.returncode == 0, result.stderr
    made = [d for d in yaml.safe_load_all(result.stdout) if d]
    for secret in made:
        kubernetes_validate.validate(secret, KUBERNETES_VERSIONS[0], strict=True)
        assert secret["metadata"]["namespace"] == namespace
    keys = {s["metadata"]["name"]: set(s["data"]) for s in made}
    wanted = referenced_secrets(render(overlay_name))
    assert set(keys) == set(wanted)
    for name, needed in wanted.items():
        assert needed <= keys[name], name
    # Generated values are kept: a second run gives the same template key (enrolled faces stay readable).
    again = make_secrets(tmp_path, "--namespace", namespace, *stores)
    first = next(s for s in made if s["metadata"]["name"] == "faceauth-app")["data"]
    second = next(s for s in yaml.safe_load_all(again.stdout) if s["metadata"]["name"] == "faceauth-app")["data"]
    assert first["FACEAUTH_TEMPLATE_KEY"] == second["FACEAUTH_TEMPLATE_KEY"]
    assert len(base64.urlsafe_b64decode(base64.b64decode(first["FACEAUTH_TEMPLATE_KEY"]))) == 32
    assert (tmp_path / "state" / "template-key").stat().st_mode & 0o077 == 0, "kept secrets readable by others"


def test_make_secrets_refuses_production_without_the_stores(tmp_path: Path) -> None:
    result = make_secrets(tmp_path, "--namespace", "faceauth")
    assert result.returncode != 0
    assert "--database-url" in result.stderr


def test_the_server_certificates_name_the_headless_services(tmp_path: Path) -> None:
    from cryptography import x509

    result = make_secrets(tmp_path, "--namespace", "faceauth-dev", "--dev")
    assert result.returncode == 0, result.stderr
    made = {s["metadata"]["name"]: s["data"] for s in yaml.safe_load_all(result.stdout) if s}
    for service in MODEL_SERVICES:
        certificate = x509.load_pem_x509_certificate(base64.b64decode(made[f"faceauth-grpc-{service}"]["server.crt"]))
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = set(names.get_values_for_type(x509.DNSName))
        assert {service, f"{service}.faceauth-dev.svc", f"{service}.faceauth-dev.svc.cluster.local"} <= dns_names


# ---- services, gRPC targets, probes ----------------------------------------------------------------------------


def test_every_service_selects_pods_and_their_named_ports(documents: list[dict]) -> None:
    workloads = of_kind(documents, *WORKLOADS)
    for service in of_kind(documents, "Service"):
        selected = [w for w in workloads if matches({"matchLabels": service["spec"]["selector"]}, pod_labels(w))]
        assert selected, f"Service {service['metadata']['name']} selects no pods"
        ports = {p.get("name") for w in selected for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
        numbers = {p["containerPort"] for w in selected for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in ports or target in numbers, (service["metadata"]["name"], target)


def test_auth_web_reaches_each_model_service_through_a_headless_service(documents: list[dict]) -> None:
    """A ClusterIP would give one virtual address, and HTTP/2's long-lived connection would pin every call to one
    pod; the headless Service's name resolves to every ready pod for the client's round_robin."""
    config = named(documents, "ConfigMap", "faceauth-auth-web")["data"]
    for service, port in MODEL_SERVICES.items():
        host, _, target_port = config[f"{service.upper()}_TARGET"].rpartition(":")
        headless = named(documents, "Service", host)
        assert headless["spec"].get("clusterIP") == "None"
        assert int(target_port) == port == headless["spec"]["ports"][0]["port"]
        assert matches(
            {"matchLabels": headless["spec"]["selector"]}, pod_labels(named(documents, "Deployment", service))
        )


def test_model_services_run_one_process_per_pod_and_probe_grpc_health(documents: list[dict]) -> None:
    config = named(documents, "ConfigMap", "faceauth-model-services")["data"]
    for service, port in MODEL_SERVICES.items():
        assert config[f"{service.upper()}_WORKERS"] == "1"
        assert config[f"{service.upper()}_LISTEN"].endswith(f":{port}")
        container = pod_spec(named(documents, "Deployment", service))["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container[probe]["exec"]["command"]
            assert command[:4] == ["python", "-m", "faceauth_common.healthcheck", f"127.0.0.1:{port}"], probe
        assert container["readinessProbe"]["exec"]["command"][4] == f"faceauth.{service}.v1.{service.title()}Service"


def test_the_python_services_run_in_production_mode_with_mutual_tls(documents: list[dict]) -> None:
    for name in ("faceauth-auth-web", "faceauth-model-services"):
        data = named(documents, "ConfigMap", name)["data"]
        assert data["FACEAUTH_ENV"] == "production"
        assert "GRPC_INSECURE" not in data
        assert data["GRPC_TLS_CA"]


# ---- autoscaling and disruption budgets --------------------------------------------------------------------------


def test_the_services_scale_on_cpu_and_keep_pods_through_disruptions(documents: list[dict]) -> None:
    for name in ("gateway", "auth-web", "liveness", "recognition"):
        deployment = named(documents, "Deployment", name)
        autoscaler = named(documents, "HorizontalPodAutoscaler", name)
        assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert [m["resource"]["name"] for m in autoscaler["spec"]["metrics"]] == ["cpu"]
        assert autoscaler["spec"]["minReplicas"] >= 2
        assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]
        budget = named(documents, "PodDisruptionBudget", name)
        assert matches(budget["spec"]["selector"], pod_labels(deployment))
        assert budget["spec"]["minAvailable"] < autoscaler["spec"]["minReplicas"], "a drain could never proceed"


# ---- network policies ------------------------------------------------------------------------------------------


EXTERNAL = None  # a client outside the cluster (or any pod of another namespace)


def allowed(policies: list[dict], source: dict[str, str] | None, target: dict[str, str] | None, port: int) -> bool:
    """May ``source`` (pod labels, or EXTERNAL) open a TCP connection to ``target`` (pod labels, or EXTERNAL: an
    address outside the cluster) on ``port``? Kubernetes NetworkPolicy semantics for one namespace: a pod selected
    by any policy of a direction is isolated in it and needs a rule of a selecting policy that admits the peer."""

    def peer_ok(peers: list[dict] | None, labels: dict[str, str] | None) -> bool:
        if peers is None:
            return True  # no `from`/`to`: every peer
        for peer in peers:
            in_namespace = "podSelector" in peer and "namespaceSelector" not in peer
            if in_namespace and labels is not None and matches(peer["podSelector"], labels):
                return True
            if "ipBlock" in peer and labels is None and peer["ipBlock"]["cidr"] in ("0.0.0.0/0", "::/0"):
                return True
        return False

    def port_ok(ports: list[dict] | None) -> bool:
        return ports is None or any(p.get("protocol", "TCP") == "TCP" and p.get("port") == port for p in ports)

    def direction_ok(pod: dict[str, str] | None, peer: dict[str, str] | None, kind: str, field: str) -> bool:
        if pod is None:
            return True  # outside the namespace: not ours to police
        selecting = [p for p in policies if kind in p["spec"]["policyTypes"] and matches(p["spec"]["podSelector"], pod)]
        if not selecting:
            return True
        return any(
            peer_ok(rule.get("from" if kind == "Ingress" else "to"), peer) and port_ok(rule.get("ports"))
            for policy in selecting
            for rule in policy["spec"].get(field, [])
        )

    return direction_ok(source, target, "Egress", "egress") and direction_ok(target, source, "Ingress", "ingress")


def labels_of(documents: list[dict]) -> dict[str, dict[str, str]]:
    return {w["metadata"]["name"]: pod_labels(w) for w in of_kind(documents, *WORKLOADS)}


def test_every_pod_is_isolated_both_ways_and_has_a_policy_of_its_own(documents: list[dict]) -> None:
    policies = of_kind(documents, "NetworkPolicy")
    deny = named(documents, "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    for name, labels in labels_of(documents).items():
        own = [p for p in policies if p["spec"]["podSelector"] and matches(p["spec"]["podSelector"], labels)]
        assert own, f"no NetworkPolicy names the pods of {name}"


def test_the_network_admits_exactly_the_intended_paths(documents: list[dict], overlay: str) -> None:
    policies = of_kind(documents, "NetworkPolicy")
    pods = labels_of(documents)
    gateway, auth_web, migrate = pods["gateway"], pods["auth-web"], pods["faceauth-migrate"]
    liveness, recognition = pods["liveness"], pods["recognition"]
    # The paths the stack needs.
    assert allowed(policies, EXTERNAL, gateway, 8443)
    assert allowed(policies, EXTERNAL, gateway, 8080)
    assert allowed(policies, gateway, auth_web, 8000)
    assert allowed(policies, auth_web, liveness, 50051)
    assert allowed(policies, auth_web, recognition, 50052)
    # Only the ingress reaches auth-web.
    for source in (EXTERNAL, liveness, recognition, migrate):
        assert not allowed(policies, source, auth_web, 8000), source
    # Only auth-web reaches the model services (not the gateway, not each other, not the outside, not metrics).
    for source in (EXTERNAL, gateway, migrate, recognition):
        assert not allowed(policies, source, liveness, 50051), source
    for source in (EXTERNAL, gateway, migrate, liveness):
        assert not allowed(policies, source, recognition, 50052), source
    assert not allowed(policies, auth_web, liveness, 9101)
    # The model services, the gateway and the migration cannot reach the outside (no exfiltration path).
    for source in (liveness, recognition, gateway, migrate):
        assert not allowed(policies, source, EXTERNAL, 443), source
    # Only auth-web (and the migration, for Postgres) reaches the stores, wherever they run.
    if overlay == "dev":
        postgres, redis = pods["postgres"], pods["redis"]
        assert allowed(policies, auth_web, postgres, 5432)
        assert allowed(policies, migrate, postgres, 5432)
        assert allowed(policies, auth_web, redis, 6379)
        for source in (EXTERNAL, gateway, liveness, recognition):
            assert not allowed(policies, source, postgres, 5432), source
            assert not allowed(policies, source, redis, 6379), source
        assert not allowed(policies, migrate, redis, 6379)
        assert not allowed(policies, postgres, EXTERNAL, 443)
    else:
        assert allowed(policies, auth_web, EXTERNAL, 5432)
        assert allowed(policies, auth_web, EXTERNAL, 6379)
        assert allowed(policies, migrate, EXTERNAL, 5432)
        for source in (gateway, liveness, recognition):
            assert not allowed(policies, source, EXTERNAL, 5432), source
            assert not allowed(policies, source, EXTERNAL, 6379), source


def test_the_policy_evaluator_can_say_no() -> None:
    """Without the default deny, everything would be open: the evaluator must see that (it is what the test above
    relies on)."""
    policies = [p for p in of_kind(render("dev"), "NetworkPolicy") if p["metadata"]["name"] != "default-deny"]
    pods = labels_of(render("dev"))
    only_deny = [named(render("dev"), "NetworkPolicy", "default-deny")]
    assert not allowed(only_deny, pods["auth-web"], pods["liveness"], 50051)
    assert allowed([], EXTERNAL, pods["liveness"], 50051)
    assert not allowed(policies, EXTERNAL, pods["liveness"], 50051)  # the model-services policy alone isolates
