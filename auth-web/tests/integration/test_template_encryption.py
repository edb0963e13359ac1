"""Templates encrypted at rest, attacked through the real Postgres: what a database reader sees, copied and
tampered rows, a wrong key, key rotation with the CLI, the 0002 migration of plaintext rows, production rules."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import numpy as np
import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session

from auth_web.migrate import downgrade, upgrade
from auth_web.models import FaceTemplate, pack_embedding
from auth_web.template_crypto import (
    NONCE_BYTES,
    TAG_BYTES,
    TemplateCipher,
    TemplateDecryptionError,
    TemplateKey,
    development_cipher,
    generate_key,
    key_id_for,
    parse_key,
)
from conftest import throwaway_database

from .conftest import (
    Browser,
    FakeLiveness,
    FakeRecognition,
    audit_rows,
    create_user,
    unique_username,
)
from .test_cli import run_cli_in_process

SEALED_BYTES = NONCE_BYTES + 128 * 4 + TAG_BYTES


def ring(current: str, *old: str) -> TemplateCipher:
    return TemplateCipher(TemplateKey(parse_key(current)), [TemplateKey(parse_key(k)) for k in old])


def raw_templates(database_url: str, user_id: int) -> list[tuple[bytes, str]]:
    """What someone with read access to the database (or a backup) gets, straight through psycopg2."""
    connection = psycopg2.connect(database_url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT embedding, key_id FROM face_templates WHERE user_id = %s ORDER BY id", (user_id,))
            return [(bytes(embedding), key_id) for embedding, key_id in cursor.fetchall()]
    finally:
        connection.close()


def assert_no_decodable_vector(raw: bytes, vectors: list[list[float]]) -> None:
    """No reading of ``raw`` as float32 (any byte offset, any 128-value window) is close to a real embedding,
    or even looks like one (128 finite values below 1 in magnitude, as every dlib embedding is)."""
    assert len(raw) != 128 * 4
    for vector in vectors:
        assert pack_embedding(vector) not in raw
    targets = np.asarray(vectors, dtype=np.float32)
    for offset in range(4):
        usable = (len(raw) - offset) // 4 * 4
        values = np.frombuffer(raw[offset : offset + usable], dtype="<f4")
        with np.errstate(invalid="ignore", over="ignore"):
            for start in range(len(values) - 127):
                window = values[start : start + 128]
                assert not (np.all(np.isfinite(window)) and np.all(np.abs(window) < 1.0)), (offset, start)
                assert not np.any(np.all(np.abs(targets - window) < 0.05, axis=1)), (offset, start)


def assert_unavailable(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["ok"], body["error"]) == (False, "temporarily_unavailable")
    assert "Traceback" not in response.get_data(as_text=True)


def vectors_of(engine, user_id: int, cipher: TemplateCipher) -> list[list[float]]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        rows = session.scalars(select(FaceTemplate).where(FaceTemplate.user_id == user_id).order_by(FaceTemplate.id))
        return [row.vector(cipher) for row in rows]


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database of its own (rotation and migration tests must not meet the other tests' rows)."""
    with throwaway_database() as url:
        yield url


# ---- what a database reader sees ---------------------------------------------------------------------------


def test_the_database_holds_no_decodable_float_vectors(db_engine, database_url: str) -> None:  # type: ignore[no-untyped-def]
    user_id = create_user(db_engine, unique_username("raw"), templates=5)
    vectors = vectors_of(db_engine, user_id, development_cipher())
    assert len(vectors) == 5 and all(len(v) == 128 for v in vectors)
    rows = raw_templates(database_url, user_id)
    assert len(rows) == 5
    for raw, key_id in rows:
        assert len(raw) == SEALED_BYTES and key_id == development_cipher().current_key_id
        assert_no_decodable_vector(raw, vectors)
    # Two rows of the same person never share a nonce.
    assert len({raw[:NONCE_BYTES] for raw, _ in rows}) == 5


# ---- rows moved or edited by someone with write access ------------------------------------------------------


def _login(make_app, fake_grpc, frames, username: str, **changes):  # type: ignore[no-untyped-def]
    fakes = fake_grpc(liveness=FakeLiveness(), recognition=FakeRecognition())
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, **changes)
    browser = Browser(app.test_client())
    return browser, fakes, browser.login(username, frames)


def test_a_ciphertext_copied_into_another_users_row_opens_nothing_and_lets_nobody_in(  # type: ignore[no-untyped-def]
    make_app, fake_grpc, db_engine, frames_a_login
) -> None:
    attacker_id = create_user(db_engine, unique_username("attacker"), templates=1)
    victim = unique_username("victim")
    victim_id = create_user(db_engine, victim, templates=2)
    with db_engine.begin() as connection:
        # The attacker's own (valid) template, pasted over the victim's: their face would then open the account.
        connection.execute(
            sa.text(
                "UPDATE face_templates SET embedding = a.embedding, key_id = a.key_id "
                "FROM (SELECT embedding, key_id FROM face_templates WHERE user_id = :attacker LIMIT 1) a "
                "WHERE user_id = :victim"
            ),
            {"attacker": attacker_id, "victim": victim_id},
        )
    with pytest.raises(TemplateDecryptionError) as caught:
        vectors_of(db_engine, victim_id, development_cipher())
    assert caught.value.reason == "AUTHENTICATION_FAILED"

    browser, fakes, response = _login(make_app, fake_grpc, frames_a_login[:6], victim)
    assert_unavailable(response)
    assert browser.signed_in_as() is None
    assert fakes.recognition.calls == 0  # the templates never left auth-web
    row = audit_rows(db_engine, victim)[-1]
    assert (row.result, row.reason) == ("error", "SERVICE_UNAVAILABLE")
    assert row.details == {"service": "template-key", "code": "AUTHENTICATION_FAILED"}  # an error, not a failure


def test_a_wrong_key_answers_unavailable_and_lets_nobody_in(make_app, fake_grpc, db_engine, frames_a_login) -> None:  # type: ignore[no-untyped-def]
    username = unique_username("wrongkey")
    create_user(db_engine, username, templates=2)  # sealed with the development key
    browser, fakes, response = _login(
        make_app, fake_grpc, frames_a_login[:6], username, template_cipher=ring(generate_key())
    )
    assert_unavailable(response)
    assert browser.signed_in_as() is None and fakes.recognition.calls == 0
    row = audit_rows(db_engine, username)[-1]
    assert row.details == {"service": "template-key", "code": "UNKNOWN_KEY"}


# ---- key rotation -------------------------------------------------------------------------------------------


def test_rotation_reencrypts_in_batches_and_the_old_key_can_then_go(  # type: ignore[no-untyped-def]
    empty_database: str, make_app, fake_grpc, frames_a_login, monkeypatch, capsys
) -> None:
    key_a, key_b = generate_key(), generate_key()
    id_a, id_b = key_id_for(parse_key(key_a)), key_id_for(parse_key(key_b))
    upgrade(empty_database)
    engine = create_engine(empty_database)
    try:
        names = [unique_username("rotate") for _ in range(2)]
        ids = [create_user(engine, name, templates=3, cipher=ring(key_a)) for name in names]
        before = {user_id: vectors_of(engine, user_id, ring(key_a)) for user_id in ids}
        env = {"DATABASE_URL": empty_database, "FACEAUTH_TEMPLATE_KEY": key_b, "FACEAUTH_TEMPLATE_OLD_KEYS": ""}

        # B without A: nothing can be re-encrypted, and the command says which key is missing.
        missing = run_cli_in_process(monkeypatch, capsys, "reencrypt-templates", env=env)
        assert missing.returncode == 1
        assert f"Cannot decrypt 6 templates: 6 with key id {id_a} (UNKNOWN_KEY)" in missing.stderr
        assert "FACEAUTH_TEMPLATE_OLD_KEYS" in missing.stderr

        env["FACEAUTH_TEMPLATE_OLD_KEYS"] = key_a
        result = run_cli_in_process(monkeypatch, capsys, "reencrypt-templates", "--batch-size", "4", env=env)
        assert result.returncode == 0, result.stderr
        assert f"re-encrypted 6 templates under key {id_b} in 2 batches; 0 were already under it" in result.stdout
        assert "0 left under other keys" in result.stdout
        again = run_cli_in_process(monkeypatch, capsys, "reencrypt-templates", env=env)
        assert again.returncode == 0 and "re-encrypted 0 templates" in again.stdout
        assert "6 were already under it" in again.stdout

        # A dropped: everything still opens with B alone (and the values did not change); A opens nothing.
        for user_id in ids:
            assert {key_id for _raw, key_id in raw_templates(empty_database, user_id)} == {id_b}
            assert vectors_of(engine, user_id, ring(key_b)) == before[user_id]
            with pytest.raises(TemplateDecryptionError, match="UNKNOWN_KEY"):
                vectors_of(engine, user_id, ring(key_a))
        browser, _fakes, response = _login(
            make_app, fake_grpc, frames_a_login[:6], names[0], database_url=empty_database, template_cipher=ring(key_b)
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert browser.signed_in_as() == names[0]
    finally:
        engine.dispose()


# ---- the 0002 migration -------------------------------------------------------------------------------------


def _insert_plaintext_rows(engine) -> dict[int, bytes]:  # type: ignore[no-untyped-def]
    """Users and templates as revision 0001 stored them (plaintext float32)."""
    rng = np.random.default_rng(13)
    plaintext: dict[int, bytes] = {}
    with engine.begin() as connection:
        for index in range(3):
            user_id = connection.execute(
                sa.text(
                    "INSERT INTO users (username, username_key, role, status, failed_attempts, lockout_count, "
                    "created_at) VALUES (:name, :name, 'user', 'active', 0, 0, CURRENT_TIMESTAMP) RETURNING id"
                ),
                {"name": f"legacy{index}"},
            ).scalar_one()
            for _ in range(2):
                blob = pack_embedding(rng.normal(size=128) * 0.1)
                template_id = connection.execute(
                    sa.text(
                        "INSERT INTO face_templates (user_id, embedding, model_version, quality, source, created_at) "
                        "VALUES (:user_id, :blob, 'dlib-v1', 0.9, 'browser', CURRENT_TIMESTAMP) RETURNING id"
                    ),
                    {"user_id": user_id, "blob": blob},
                ).scalar_one()
                plaintext[template_id] = blob
    return plaintext


def _stored(engine) -> dict[int, tuple[int, bytes, str | None]]:  # type: ignore[no-untyped-def]
    has_key_id = "key_id" in {c["name"] for c in inspect(engine).get_columns("face_templates")}
    query = "SELECT id, user_id, embedding, key_id FROM face_templates"
    if not has_key_id:
        query = "SELECT id, user_id, embedding, NULL FROM face_templates"
    with engine.connect() as connection:
        return {row[0]: (row[1], bytes(row[2]), row[3]) for row in connection.execute(sa.text(query))}


@pytest.fixture(params=["postgres", "sqlite"])
def migration_database(request, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Postgres (production) and SQLite (the try-it-out fallback, where Alembic rebuilds the table)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'legacy.db'}"
    return request.getfixturevalue("empty_database")


def test_the_migration_encrypts_plaintext_rows_and_the_downgrade_decrypts_them(  # type: ignore[no-untyped-def]
    migration_database: str, monkeypatch, capsys
) -> None:
    empty_database = migration_database
    key = generate_key()
    upgrade(empty_database, "0001")
    engine = create_engine(empty_database)
    try:
        plaintext = _insert_plaintext_rows(engine)

        # Rows to convert and no key: a clear refusal, and the database is left as it was.
        monkeypatch.delenv("FACEAUTH_TEMPLATE_KEY", raising=False)
        refused = run_cli_in_process(monkeypatch, capsys, "migrate", env={"DATABASE_URL": empty_database})
        assert refused.returncode == 1
        assert "6 plaintext templates to encrypt, but FACEAUTH_TEMPLATE_KEY is not set" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert {t: blob for t, (_u, blob, _k) in _stored(engine).items()} == plaintext
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0001"

        env = {"DATABASE_URL": empty_database, "FACEAUTH_TEMPLATE_KEY": key}
        assert run_cli_in_process(monkeypatch, capsys, "migrate", env=env).returncode == 0
        cipher = ring(key)
        stored = _stored(engine)
        assert set(stored) == set(plaintext)
        for template_id, (user_id, blob, key_id) in stored.items():
            assert key_id == cipher.current_key_id and len(blob) == SEALED_BYTES
            original = np.frombuffer(plaintext[template_id], dtype="<f4").tolist()
            assert_no_decodable_vector(blob, [original])
            assert cipher.open(blob, key_id=key_id, user_id=user_id, model_version="dlib-v1") == plaintext[template_id]
        with Session(engine) as session:
            assert all(len(t.vector(cipher)) == 128 for t in session.scalars(select(FaceTemplate)))

        downgrade(empty_database, "0001", cipher)
        assert {t: blob for t, (_u, blob, _k) in _stored(engine).items()} == plaintext
        assert "key_id" not in {c["name"] for c in inspect(engine).get_columns("face_templates")}
        # And up again, now with the key from the environment only (how alembic itself would run it).
        monkeypatch.setenv("FACEAUTH_TEMPLATE_KEY", key)
        upgrade(empty_database)
        assert all(len(blob) == SEALED_BYTES for _u, blob, _k in _stored(engine).values())
    finally:
        engine.dispose()


def test_an_empty_database_migrates_without_a_key(empty_database: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("FACEAUTH_TEMPLATE_KEY", raising=False)
    upgrade(empty_database)
    downgrade(empty_database, "0001")


# ---- production and the key commands ------------------------------------------------------------------------


def test_production_refuses_to_start_without_a_template_key(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("FACEAUTH_TEMPLATE_KEY", raising=False)
    env = {"FACEAUTH_ENV": "production", "FACEAUTH_SECRET_KEY": secrets.token_urlsafe(48)}
    result = run_cli_in_process(monkeypatch, capsys, "serve", env=env)
    assert result.returncode == 2
    assert "FACEAUTH_TEMPLATE_KEY must be set in production" in result.stderr
    assert "generate-template-key" in result.stderr


def test_generate_template_key_works_where_the_key_is_still_missing(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("FACEAUTH_TEMPLATE_KEY", raising=False)
    result = run_cli_in_process(monkeypatch, capsys, "generate-template-key", env={"FACEAUTH_ENV": "production"})
    assert result.returncode == 0
    key = result.stdout.strip()
    assert f"key id {key_id_for(parse_key(key))}" in result.stderr
    assert key != run_cli_in_process(monkeypatch, capsys, "generate-template-key", env={}).stdout.strip()
