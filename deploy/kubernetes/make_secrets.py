"""Make the Secrets the faceauth manifests expect, as YAML on stdout (pipe it to ``kubectl apply -f -``).

    .venv/bin/python deploy/kubernetes/make_secrets.py --namespace faceauth-dev --dev \\
        --gateway-cert fullchain.pem --gateway-key privkey.pem | kubectl apply -f -
    .venv/bin/python deploy/kubernetes/make_secrets.py --namespace faceauth \\
        --database-url 'postgresql+psycopg2://faceauth:…@db.example:5432/faceauth' \\
        --redis-url 'rediss://:…@redis.example:6380/0' \\
        --gateway-cert fullchain.pem --gateway-key privkey.pem | kubectl apply -f -

What it makes (names and keys: secrets.example.yaml beside this file):
- ``faceauth-app``: FACEAUTH_SECRET_KEY, FACEAUTH_TEMPLATE_KEY, DATABASE_URL, REDIS_URL;
- ``faceauth-grpc-liveness`` / ``-recognition`` / ``-auth-web``: the gRPC mutual TLS certificates from a private CA
  (``faceauth_common.tls``), the servers' naming the headless Services (``liveness``, ``liveness.NAMESPACE``,
  ``liveness.NAMESPACE.svc`` …);
- ``faceauth-gateway-tls``: the public certificate and key (a ``kubernetes.io/tls`` Secret);
- with ``--dev``: ``faceauth-dev-stores`` (the in-cluster Postgres and Redis passwords), and the URLs to them.

Generated values (secret key, template key, store passwords, the CA and certificates) are kept in ``--state-dir``
(default ``var/kubernetes/NAMESPACE``, files readable by you only) and reused on the next run: the template key
must never change under enrolled faces (FACEAUTH_TEMPLATE_OLD_KEYS rotates it), and the CA key never enters the
cluster. Keep that folder as safe as the database backups, and apart from them.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from faceauth_common.tls import ServiceFolders, ensure_certificates

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"liveness": 50051, "recognition": 50052}


def service_hosts(name: str, namespace: str, cluster_domain: str) -> list[str]:
    """The names auth-web may use for a headless Service (the manifests use the short one), then loopback for the
    pod's own probe."""
    return [
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.{cluster_domain}",
        "localhost",
        "127.0.0.1",
        "::1",
    ]


def kept(path: Path, make: Callable[[], str]) -> str:
    """The value stored at ``path``, made (and stored, mode 0600) on first use."""
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    value = make()
    path.write_text(value + "\n")
    return value


def secret(name: str, namespace: str, data: dict[str, bytes], kind: str = "Opaque") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "faceauth"}},
        "data": {key: base64.b64encode(value).decode() for key, value in sorted(data.items())},
    }


def make_secrets(args: argparse.Namespace) -> list[dict]:
    namespace = args.namespace
    state = (args.state_dir or REPO_ROOT / "var" / "kubernetes" / namespace).resolve()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    secret_key = kept(state / "secret-key", lambda: secrets.token_urlsafe(48))
    template_key = args.template_key or kept(
        state / "template-key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    )
    made: list[dict] = []
    if args.dev:
        # URL-safe passwords: they go into the URLs as they are.
        postgres_password = kept(state / "postgres-password", lambda: secrets.token_urlsafe(24))
        redis_password = kept(state / "redis-password", lambda: secrets.token_urlsafe(24))
        database_url = f"postgresql+psycopg2://faceauth:{postgres_password}@postgres:5432/faceauth"
        redis_url = f"redis://:{redis_password}@redis:6379/0"
        made.append(
            secret(
                "faceauth-dev-stores",
                namespace,
                {"POSTGRES_PASSWORD": postgres_password.encode(), "REDIS_PASSWORD": redis_password.encode()},
            )
        )
    else:
        database_url, redis_url = args.database_url, args.redis_url
    made.insert(
        0,
        secret(
            "faceauth-app",
            namespace,
            {
                "FACEAUTH_SECRET_KEY": secret_key.encode(),
                "FACEAUTH_TEMPLATE_KEY": template_key.encode(),
                "DATABASE_URL": database_url.encode(),
                "REDIS_URL": redis_url.encode(),
            },
        ),
    )

    folders = ServiceFolders.under(state / "grpc-tls")
    ensure_certificates(
        folders,
        service_hosts("liveness", namespace, args.cluster_domain),
        service_hosts("recognition", namespace, args.cluster_domain),
    )
    for name, folder in (("liveness", folders.liveness), ("recognition", folders.recognition)):
        files = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
        made.append(secret(f"faceauth-grpc-{name}", namespace, {f: (folder / f).read_bytes() for f in files}))
    files = ("ca.crt", "client.crt", "client.key")
    made.append(secret("faceauth-grpc-auth-web", namespace, {f: (folders.auth_web / f).read_bytes() for f in files}))
    made.append(
        secret(
            "faceauth-gateway-tls",
            namespace,
            {"tls.crt": args.gateway_cert.read_bytes(), "tls.key": args.gateway_key.read_bytes()},
            kind="kubernetes.io/tls",
        )
    )
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make_secrets.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--dev", action="store_true", help="in-cluster Postgres and Redis (overlays/dev)")
    parser.add_argument("--database-url", help="SQLAlchemy URL of your Postgres (required without --dev)")
    parser.add_argument("--redis-url", help="URL of your Redis (required without --dev)")
    parser.add_argument("--gateway-cert", type=Path, required=True, help="the public certificate chain (PEM)")
    parser.add_argument("--gateway-key", type=Path, required=True, help="its private key (PEM)")
    parser.add_argument("--template-key", help="an existing FACEAUTH_TEMPLATE_KEY (default: made once, kept)")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--state-dir", type=Path, help="where generated values are kept (var/kubernetes/NAMESPACE)")
    args = parser.parse_args(argv)
    if args.dev and (args.database_url or args.redis_url):
        parser.error("--dev makes the store URLs itself; give --database-url/--redis-url only without --dev")
    if not args.dev and not (args.database_url and args.redis_url):
        parser.error("without --dev, --database-url and --redis-url are required (your Postgres and Redis)")
    for path in (args.gateway_cert, args.gateway_key):
        if not path.is_file():
            parser.error(f"{path} is not a readable file")
    yaml.safe_dump_all(make_secrets(args), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
