"""The client registry (CLI and admin page), signing-key rotation by command, and the groups page."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from auth_web.models import AuditEvent, User
from auth_web.oidc_models import OAuthClient, SigningKey

from .conftest import Browser, create_user, sign_in_directly, unique_username
from .test_cli import run_cli_in_process
from .test_oidc import REDIRECT, Client, authorize, exchange, redirected_params, sign_in_as


def test_cli_client_create_list_rotate_delete(  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str, db_engine
) -> None:
    env = {"DATABASE_URL": database_url}
    client_id = unique_username("cli-app")
    created = run_cli_in_process(
        monkeypatch,
        capsys,
        "client",
        "create",
        "--name",
        "CLI app",
        "--client-id",
        client_id,
        "--redirect-uri",
        REDIRECT,
        "--refresh-tokens",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    secret = re.search(r"client_secret: (\S+)", created.stdout).group(1)  # type: ignore[union-attr]
    with Session(db_engine) as session:
        row = session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        assert row is not None and row.secret_hash and secret not in row.secret_hash  # hashed
        assert row.refresh_tokens and not row.first_party
    listed = run_cli_in_process(monkeypatch, capsys, "client", "list", env=env)
    assert client_id in listed.stdout and secret not in listed.stdout
    rotated = run_cli_in_process(monkeypatch, capsys, "client", "rotate-secret", client_id, env=env)
    new_secret = re.search(r"client_secret: (\S+)", rotated.stdout).group(1)  # type: ignore[union-attr]
    assert new_secret != secret
    refused = run_cli_in_process(
        monkeypatch,
        capsys,
        "client",
        "create",
        "--name",
        "x",
        "--redirect-uri",
        "http://evil.test/cb",  # http only for loopback
        env=env,
    )
    assert refused.returncode == 1 and "http://" in refused.stderr
    deleted = run_cli_in_process(monkeypatch, capsys, "client", "delete", client_id, env=env)
    assert deleted.returncode == 0
    with Session(db_engine) as session:
        assert session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id)) is None
        events = session.scalars(select(AuditEvent.event).where(AuditEvent.client_address == "cli")).all()
        assert {"client_create", "client_rotate_secret", "client_delete"} <= set(events)


def test_rotated_secret_replaces_the_old_one(
    make_app: Callable[..., Flask], db_engine, monkeypatch, capsys, database_url
) -> None:  # type: ignore[no-untyped-def]
    from .test_oidc import ISSUER, register

    app = make_app(oidc_issuer=ISSUER)
    client = register(db_engine, first_party=True)
    rotated = run_cli_in_process(
        monkeypatch, capsys, "client", "rotate-secret", client.client_id, env={"DATABASE_URL": database_url}
    )
    new = Client(client.client_id, re.search(r"client_secret: (\S+)", rotated.stdout).group(1))  # type: ignore[union-attr]
    browser = Browser(app.test_client())
    sign_in_as(browser, create_user(db_engine, unique_username("rot")))
    code = redirected_params(authorize(browser, client.client_id))["code"]
    assert exchange(browser, client, code).status_code == 401
    code = redirected_params(authorize(browser, client.client_id))["code"]
    assert exchange(browser, new, code).status_code == 200


def test_cli_rotate_signing_key(monkeypatch, capsys, database_url: str, db_engine) -> None:  # type: ignore[no-untyped-def]
    env = {"DATABASE_URL": database_url}
    first = run_cli_in_process(monkeypatch, capsys, "rotate-signing-key", env=env)
    second = run_cli_in_process(monkeypatch, capsys, "rotate-signing-key", env=env)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    with Session(db_engine) as session:
        active = session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))).all()
        assert len(active) == 1 and active[0].kid in second.stdout


@pytest.fixture
def admin_browser(make_app: Callable[..., Flask], db_engine) -> Browser:  # type: ignore[no-untyped-def]
    app = make_app()
    browser = Browser(app.test_client())
    sign_in_directly(browser, create_user(db_engine, unique_username("admin"), role="admin"))
    browser.refresh_csrf("/admin/clients")
    return browser


def test_admin_page_creates_a_client_and_shows_the_secret_once(admin_browser: Browser, db_engine) -> None:  # type: ignore[no-untyped-def]
    name = unique_username("Page app ")
    response = admin_browser.client.post(
        "/admin/clients",
        data={
            "csrf_token": admin_browser.csrf,
            "name": name,
            "redirect_uris": REDIRECT,
            "auth_method": "client_secret_basic",
            "scopes": "openid profile",
        },
    )
    assert response.status_code == 200
    secret = re.search(r'<code class="secret">([^<]+)</code>', response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    listing = admin_browser.client.get("/admin/clients").get_data(as_text=True)
    assert name in listing and secret not in listing
    with Session(db_engine) as session:
        row = session.scalar(select(OAuthClient).where(OAuthClient.name == name))
        assert row is not None
        pk = row.id
    # CSRF is required; a non-admin is refused.
    assert admin_browser.client.post(f"/admin/clients/{pk}/delete").status_code == 400
    deleted = admin_browser.client.post(f"/admin/clients/{pk}/delete", data={"csrf_token": admin_browser.csrf})
    assert deleted.status_code == 302
    with Session(db_engine) as session:
        assert session.get(OAuthClient, pk) is None


def test_admin_pages_are_for_admins_only(make_app: Callable[..., Flask], db_engine) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(make_app().test_client())
    sign_in_directly(browser, create_user(db_engine, unique_username("plain")))
    assert browser.client.get("/admin/clients").status_code == 403
    assert browser.client.get("/admin/groups").status_code == 403
    browser.refresh_csrf("/account")
    response = browser.client.post("/admin/groups", data={"csrf_token": browser.csrf, "username": "x", "groups": "a"})
    assert response.status_code == 403


def test_admin_sets_groups_audited(admin_browser: Browser, db_engine) -> None:  # type: ignore[no-untyped-def]
    username = unique_username("member")
    user_id = create_user(db_engine, username)
    response = admin_browser.client.post(
        "/admin/groups", data={"csrf_token": admin_browser.csrf, "username": username, "groups": "staff, wiki-editors"}
    )
    assert response.status_code == 302
    page = admin_browser.client.get("/admin/groups").get_data(as_text=True)
    assert "wiki-editors" in page and username in page
    bad = admin_browser.client.post(
        "/admin/groups", data={"csrf_token": admin_browser.csrf, "username": username, "groups": "admin"}
    )
    assert bad.status_code == 302
    with Session(db_engine) as session:
        from auth_web.groups import group_names

        user = session.get(User, user_id)
        assert user is not None and group_names(session, user) == ["staff", "wiki-editors"]
        row = session.scalars(
            select(AuditEvent).where(AuditEvent.user_id == user_id, AuditEvent.event == "admin_set_groups")
        ).first()
        assert row is not None and row.details == {"added": ["staff", "wiki-editors"], "removed": []}


def test_cli_create_with_a_given_secret_and_replace(  # type: ignore[no-untyped-def]
    monkeypatch, capsys, database_url: str, db_engine, tmp_path
) -> None:
    """What the local run and compose's demo-register do: the operator's secret (a file, stdin), re-run safely."""
    env = {"DATABASE_URL": database_url}
    client_id = unique_username("given")
    secret_file = tmp_path / "secret"
    secret_file.write_text("s" * 40 + "\n")
    args = ("client", "create", "--client-id", client_id, "--name", "Given", "--redirect-uri", REDIRECT)
    first = run_cli_in_process(monkeypatch, capsys, *args, "--secret-file", str(secret_file), env=env)
    assert first.returncode == 0 and "s" * 40 not in first.stdout  # not echoed
    again = run_cli_in_process(monkeypatch, capsys, *args, "--secret-file", str(secret_file), env=env)
    assert again.returncode == 1 and "exists" in again.stderr
    replaced = run_cli_in_process(monkeypatch, capsys, *args, "--replace", "--secret-stdin", env=env, stdin="t" * 40)
    assert replaced.returncode == 0, replaced.stderr
    short = run_cli_in_process(monkeypatch, capsys, *args, "--replace", "--secret-stdin", env=env, stdin="short")
    assert short.returncode == 1 and "at least 32" in short.stderr
    from auth_web.accounts import verify_password

    with Session(db_engine) as session:
        row = session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        assert row is not None and verify_password(row.secret_hash, "t" * 40)


def test_template_key_rotation_reseals_the_signing_keys(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """The signing keys are sealed with the template cipher: reencrypt-templates moves them to the new key too, so
    that dropping the old key (FACEAUTH_TEMPLATE_OLD_KEYS) does not lose them."""
    from sqlalchemy import create_engine

    from auth_web.migrate import upgrade
    from conftest import throwaway_database

    with throwaway_database() as database_url:  # its own: every row of it is re-sealed under a new key
        upgrade(database_url)
        db_engine = create_engine(database_url)
        try:
            _reseal_signing_keys(monkeypatch, capsys, database_url, db_engine)
        finally:
            db_engine.dispose()


def _reseal_signing_keys(monkeypatch, capsys, database_url: str, db_engine) -> None:  # type: ignore[no-untyped-def]
    from auth_web import oidc_keys
    from auth_web.template_crypto import TemplateCipher, TemplateKey, generate_key, parse_key

    old_text, new_text = generate_key(), generate_key()
    old = TemplateCipher(TemplateKey(parse_key(old_text)))
    new_only = TemplateCipher(TemplateKey(parse_key(new_text)))
    with Session(db_engine) as session:
        row = oidc_keys.create_key(session, old, "ES256")
        session.commit()
        kid = row.kid
    env = {"DATABASE_URL": database_url, "FACEAUTH_TEMPLATE_KEY": new_text, "FACEAUTH_TEMPLATE_OLD_KEYS": old_text}
    result = run_cli_in_process(monkeypatch, capsys, "reencrypt-templates", env=env)
    assert "OIDC signing keys re-sealed" in result.stdout, (result.stdout, result.stderr)
    with Session(db_engine) as session:
        row = session.scalar(select(SigningKey).where(SigningKey.kid == kid))
        assert row is not None and row.key_id == new_only.current_key_id
        assert oidc_keys.private_key(row, new_only).as_dict(private=True)["d"]


def test_serve_makes_the_signing_key_at_start(base_settings) -> None:  # type: ignore[no-untyped-def]
    """`python -m auth_web serve` makes the first signing key before the workers start; a database not migrated
    (or not reachable) yet only postpones it (the first request that needs one makes it)."""
    from sqlalchemy import create_engine

    from auth_web.cli import _ensure_signing_key
    from auth_web.migrate import upgrade
    from conftest import throwaway_database

    with throwaway_database() as empty:
        _ensure_signing_key(base_settings.replace(database_url=empty))  # no tables yet: no error
        upgrade(empty)
        _ensure_signing_key(base_settings.replace(database_url=empty))
        _ensure_signing_key(base_settings.replace(database_url=empty))  # again: still one
        engine = create_engine(empty)
        with Session(engine) as session:
            rows = session.scalars(select(SigningKey)).all()
            assert len(rows) == 1 and rows[0].retired_at is None and rows[0].alg == "ES256"
        engine.dispose()
