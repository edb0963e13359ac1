"""The operator commands as real processes: migrate, create-admin, import-templates, set-password, serve."""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session

from auth_web.accounts import verify_password
from auth_web.models import Base, FaceTemplate, User
from auth_web.template_crypto import development_cipher
from conftest import REDIS_URL, GrpcTls, free_port, throwaway_database

from .conftest import PASSWORD


def run_cli_in_process(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    env: dict[str, str],
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m auth_web ARGS` without a new interpreter (imports cost seconds on a busy machine)."""
    from auth_web.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auth_web", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def fresh_database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


def test_migrate_creates_the_schema_and_nothing_else(fresh_database: str) -> None:
    result = run_cli("migrate", env={"DATABASE_URL": fresh_database})
    assert result.returncode == 0, result.stderr
    engine = create_engine(fresh_database)
    try:
        assert set(inspect(engine).get_table_names()) == {
            "alembic_version",
            "users",
            "face_templates",
            "passkeys",
            "recovery_links",
            "audit_events",
            "oauth_clients",
            "oidc_signing_keys",
            "oauth_consents",
            "oauth_refresh_tokens",
            "oidc_subjects",
            "groups",
            "user_groups",
        }
        with Session(engine) as session:
            assert session.scalar(select(User)) is None  # no users created
        # Running it again is a no-op.
        assert run_cli("migrate", env={"DATABASE_URL": fresh_database}).returncode == 0
    finally:
        engine.dispose()


def test_models_match_the_migrations(db_engine) -> None:  # type: ignore[no-untyped-def]
    with db_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migrations_run_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'faceauth.db'}"
    assert run_cli("migrate", env={"DATABASE_URL": url}).returncode == 0
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            user = User(username="sqlite", username_key="sqlite", password_hash=None)
            session.add(user)
            session.flush()
            cipher = development_cipher()
            session.add(FaceTemplate.seal([0.1] * 128, user_id=user.id, model_version="v", cipher=cipher, quality=0.5))
            session.commit()
            assert session.get(User, user.id).templates[0].vector(cipher) == pytest.approx([0.1] * 128)
    finally:
        engine.dispose()


def test_create_admin_and_set_password(database_url: str, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env = {"DATABASE_URL": database_url}
    name = f"root{secrets.token_hex(3)}"
    result = run_cli_in_process(
        monkeypatch, capsys, "create-admin", "--username", name, "--password-stdin", env=env, stdin=PASSWORD + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    again = run_cli_in_process(
        monkeypatch,
        capsys,
        "create-admin",
        "--username",
        name.upper(),
        "--password-stdin",
        env=env,
        stdin=PASSWORD + "\n",
    )
    assert again.returncode == 1 and "--promote" in again.stderr
    weak = run_cli_in_process(
        monkeypatch, capsys, "create-admin", "--username", "x" + name, "--password-stdin", env=env, stdin="short\n"
    )
    assert weak.returncode == 1 and "at least" in weak.stderr
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            admin = session.scalar(select(User).where(User.username == name))
            assert admin is not None and admin.role == "admin" and verify_password(admin.password_hash, PASSWORD)
        result = run_cli_in_process(
            monkeypatch, capsys, "set-password", name, env={**env, "FACEAUTH_PASSWORD": "another good passphrase"}
        )
        assert result.returncode == 0, result.stderr
        with Session(engine) as session:
            admin = session.scalar(select(User).where(User.username == name))
            assert verify_password(admin.password_hash, "another good passphrase")
    finally:
        engine.dispose()


def test_import_templates(database_url: str, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    suffix = secrets.token_hex(3)
    people = [
        {
            "name": f"George_W_Bush_{suffix}",
            "templates": [
                {"embedding": [0.01 * i for i in range(128)], "quality": 0.8, "source": "George_W_Bush/1.jpg"},
                {"embedding": [0.02 * i for i in range(128)], "quality": 0.9, "source": "George_W_Bush/2.jpg"},
            ],
            "skipped": [{"source": "George_W_Bush/3.jpg", "reason": "NO_FACE"}],
        },
        {"name": "not a valid name!", "templates": [{"embedding": [0.0] * 128, "quality": 0.5, "source": "x.jpg"}]},
        {"name": f"bad_vector_{suffix}", "templates": [{"embedding": [0.0] * 3, "quality": 0.5, "source": "y.jpg"}]},
    ]
    document = {
        "format": "faceauth-templates/1",
        "model_version": "dlib-test-v1",
        "created": "2026-01-01T00:00:00Z",
        "people": people,
    }
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(document))
    env = {"DATABASE_URL": database_url}
    result = run_cli_in_process(monkeypatch, capsys, "import-templates", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert "1 users created" in result.stdout and "2 skipped as invalid" in result.stdout
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            user = session.scalar(select(User).where(User.username == f"George_W_Bush_{suffix}"))
            assert user is not None and user.password_hash is None  # no password until set-password
            assert sorted(t.quality for t in user.templates) == pytest.approx([0.8, 0.9])
            assert {t.model_version for t in user.templates} == {"dlib-test-v1"}
            assert user.templates[0].source.startswith("import:")
            # Stored encrypted like an enrollment (no FACEAUTH_TEMPLATE_KEY here: the development key).
            imported = sorted(tuple(t.vector(development_cipher())) for t in user.templates)
            expected = sorted(tuple(t["embedding"]) for t in people[0]["templates"])
            assert [list(v) for v in imported] == [pytest.approx(list(v)) for v in expected]
            assert all(len(t.embedding) == 540 and t.key_id for t in user.templates)
        # Existing users are left alone unless --replace.
        document["people"][0]["templates"] = document["people"][0]["templates"][:1]
        path.write_text(json.dumps(document))
        assert (
            "1 existing users skipped"
            in run_cli_in_process(monkeypatch, capsys, "import-templates", str(path), env=env).stdout
        )
        assert (
            "1 replaced"
            in run_cli_in_process(monkeypatch, capsys, "import-templates", str(path), "--replace", env=env).stdout
        )
        with Session(engine) as session:
            user = session.scalar(select(User).where(User.username == f"George_W_Bush_{suffix}"))
            assert len(user.templates) == 1
    finally:
        engine.dispose()
    path.write_text(json.dumps({"format": "something-else"}))
    bad = run_cli_in_process(monkeypatch, capsys, "import-templates", str(path), env=env)
    assert bad.returncode == 1 and "faceauth-templates/1" in bad.stderr


def test_production_refuses_to_start_with_the_default_secret() -> None:
    result = run_cli("serve", env={"FACEAUTH_ENV": "production", "FACEAUTH_SECRET_KEY": ""})
    assert result.returncode == 2 and "FACEAUTH_SECRET_KEY" in result.stderr


def test_serve_runs_gunicorn_and_stops_cleanly(database_url: str, redis_prefix: str, grpc_tls: GrpcTls) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "auth_web", "serve"],
        env={
            **os.environ,
            **grpc_tls.env,  # auth-web refuses to start without mutual TLS to the model services (or GRPC_INSECURE)
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "AUTH_WEB_LISTEN": f"127.0.0.1:{port}",
            "AUTH_WEB_WORKERS": "1",
            "AUTH_REDIS_PREFIX": redis_prefix + "serve:",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "auth-web did not answer /healthz"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
            page = response.read().decode()
            assert response.status == 200 and 'name="csrf-token"' in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/js/capture.js", timeout=5) as response:
            assert response.status == 200 and b"getUserMedia" in response.read()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert '"event": "starting"' in output
