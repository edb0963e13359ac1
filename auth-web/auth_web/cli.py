"""Operator commands: ``python -m auth_web {serve,migrate,create-admin,set-password,import-templates,
reencrypt-templates,generate-template-key,client,rotate-signing-key}``."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from auth_web import audit, oidc_cli, reasons
from auth_web.accounts import (
    ValidationError,
    hash_password,
    normalize_username,
    validate_password,
    validate_username,
)
from auth_web.config import LOCAL_RUN_URL, Settings
from auth_web.context import find_user
from auth_web.db import make_engine
from auth_web.models import (
    RECOVERY_BOTH,
    RECOVERY_FACE,
    RECOVERY_PURPOSES,
    ROLE_ADMIN,
    FaceTemplate,
    User,
    pack_embedding,
)
from auth_web.template_crypto import TemplateDecryptionError, generate_key, key_id_for, parse_key
from faceauth_common.logs import configure_logging
from faceauth_common.settings import SettingsError

log = logging.getLogger("auth_web.cli")

TEMPLATE_FORMAT = "faceauth-templates/1"
PASSWORD_ENV = "FACEAUTH_PASSWORD"  # noqa: S105 (a variable name, not a secret)


class CommandError(Exception):
    """A command cannot do what was asked; the message is printed for the operator."""


def _read_password(args: argparse.Namespace, username: str, settings: Settings) -> str:
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {username}: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CommandError("the two passwords differ")
    else:
        raise CommandError(f"give the password on a terminal, with --password-stdin, or in ${PASSWORD_ENV}")
    try:
        return validate_password(password, username, settings.password_min_length)
    except ValidationError as error:
        raise CommandError(str(error)) from None


def _audit(session: Session, event: str, user: User | None, details: dict[str, Any] | None = None) -> None:
    """An operator's change, audited like the web tier's (row, log line, metric), in the command's transaction."""
    audit.record(
        event,
        reasons.SUCCESS,
        reasons.OK,
        user_id=user.id if user is not None else None,
        claimed_username=user.username if user is not None else None,
        details=details,
        db_session=session,
        client_address="cli",
    )


def create_admin(settings: Settings, args: argparse.Namespace) -> str:
    """The first admin, and a one-time enrollment link: signing in needs a face, so the admin enrolls it (and
    sets the password, with ``--no-password``) through the link, then signs in."""
    try:
        username = validate_username(args.username)
    except ValidationError as error:
        raise CommandError(str(error)) from None
    with Session(make_engine(settings)) as session:
        user = find_user(session, username)
        if user is not None and not args.promote:
            raise CommandError(f"user {username!r} exists; use --promote to make them an admin (and set the password)")
        password = None if args.no_password else _read_password(args, username, settings)
        if user is None:
            user = User(username=username, username_key=normalize_username(username))
            session.add(user)
        user.role = ROLE_ADMIN
        user.status = "active"
        if password is not None:
            user.password_hash = hash_password(password)
        session.flush()
        _audit(session, reasons.ADMIN_CREATE, user)
        purpose = RECOVERY_BOTH if user.password_hash is None else RECOVERY_FACE
        if user.templates and password is not None:
            session.commit()
            return f"admin {username!r} is ready (a face is enrolled already); sign in at {_public_url(settings)}/login"
        url = _link(settings, session, user, purpose)
    steps = "set your password, then enroll your face" if purpose == RECOVERY_BOTH else "enroll your face"
    hours = max(1, settings.recovery_link_ttl_seconds // 3600)
    return (
        f"admin {username!r} is ready. Signing in needs a face, so enroll it first:\n"
        f"  1. Open this one-time link in a browser with a camera (it works once, for {hours} hours):\n"
        f"     {url}\n"
        f"  2. Choose Continue and {steps}.\n"
        f"  3. Sign in at {_public_url(settings)}/login with your username"
        f"{' and password' if settings.password_required else ''} and your face.\n"
        f"Lost the link? Run: python -m auth_web recovery-link {username} --purpose {purpose}"
    )


def _public_url(settings: Settings) -> str:
    return settings.public_url or LOCAL_RUN_URL


def _link(settings: Settings, session: Session, user: User, purpose: str) -> str:
    """A recovery link issued by the operator (committed and audited in the command's transaction)."""
    from auth_web import account_security, recovery

    issued = account_security.issue_link(
        session,
        user,
        purpose,
        channel=recovery.CHANNEL_CLI,
        ttl_seconds=settings.recovery_link_ttl_seconds,
        client_address="cli",
        in_request=False,
    )
    return recovery.link_url(_public_url(settings), issued.token)


def recovery_link(settings: Settings, args: argparse.Namespace) -> str:
    """A one-time link for a user: set the password, enroll the face, or both; older unused ones for the same
    purpose stop working."""
    with Session(make_engine(settings)) as session:
        user = find_user(session, args.username)
        if user is None:
            raise CommandError(f"no user {args.username!r}")
        if not user.is_active:
            raise CommandError(f"user {user.username!r} is disabled; enable them first (the admin page)")
        if args.purpose in (RECOVERY_FACE, RECOVERY_BOTH) and args.reset_face:
            from auth_web import account_security

            account_security.reset_face(session, user, client_address="cli", commit=False)
        url = _link(settings, session, user, args.purpose)
        username = user.username
    hours = max(1, settings.recovery_link_ttl_seconds // 3600)
    return (
        f"one-time link for {username!r} (works once, for {hours} hours; give it only to them):\n  {url}\n"
        f"They open it, choose Continue, follow the steps, then sign in at {_public_url(settings)}/login"
    )


def unlock(settings: Settings, args: argparse.Namespace) -> str:
    """Clear a user's failed sign-ins (delays and locks) in Redis."""
    with Session(make_engine(settings)) as session:
        user = find_user(session, args.username)
        if user is None:
            raise CommandError(f"no user {args.username!r}")
        note = _forget_failed_logins(settings, user.username)
        if note:
            raise CommandError(note.strip(" ()"))
        _audit(session, reasons.ADMIN_UNLOCK, user)
        session.commit()
        return f"failed sign-ins of {user.username!r} are cleared"


def set_password(settings: Settings, args: argparse.Namespace) -> str:
    with Session(make_engine(settings)) as session:
        user = find_user(session, args.username)
        if user is None:
            raise CommandError(f"no user {args.username!r}")
        username = user.username
        user.password_hash = hash_password(_read_password(args, username, settings))
        _audit(session, reasons.PASSWORD_SET, user)
        session.commit()
    return f"password of {username!r} is set" + _forget_failed_logins(settings, username)


def _forget_failed_logins(settings: Settings, username: str) -> str:
    """Clear the name's failed-login delays and locks (Redis); a note instead when Redis cannot be reached."""
    from auth_web import redis_store, throttle

    client = redis_store.make_client(settings)
    try:
        throttle.failure_log(client, settings).forget_username(username)
    except redis.RedisError as error:
        return f" (its failed logins were not cleared: Redis unavailable, {type(error).__name__})"
    finally:
        client.close()
    return ""


def _validate_template_file(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or document.get("format") != TEMPLATE_FORMAT:
        raise CommandError(f"not a {TEMPLATE_FORMAT} file (its 'format' field differs)")
    if not isinstance(document.get("model_version"), str) or not document["model_version"]:
        raise CommandError("the file has no model_version")
    people = document.get("people")
    if not isinstance(people, list):
        raise CommandError("the file has no 'people' list")
    return people


def import_templates(settings: Settings, args: argparse.Namespace) -> str:
    """Users from the recognition service's bulk-encode output: one person (folder name) = one username.

    New users are created WITHOUT a password (they cannot use password+face until ``set-password``);
    existing users keep their account, and their templates are replaced only with ``--replace``.
    """
    path = Path(args.file)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read {path}: {error}") from None
    people = _validate_template_file(document)
    model_version = document["model_version"]
    counts = {"created": 0, "updated": 0, "skipped_existing": 0, "skipped_invalid": 0, "templates": 0}
    now = dt.datetime.now(dt.UTC)
    with Session(make_engine(settings)) as session:
        for person in people:
            name = person.get("name") if isinstance(person, dict) else None
            try:
                username = validate_username(str(name or ""))
            except ValidationError:
                print(f"skipped {name!r}: not a valid username", file=sys.stderr)
                counts["skipped_invalid"] += 1
                continue
            templates = []
            for item in person.get("templates") or []:
                try:
                    embedding = item["embedding"]
                    pack_embedding(embedding)  # validates: 128 finite numbers
                    quality = float(item.get("quality", 0.0))
                except (KeyError, TypeError, ValueError):
                    continue
                source = str(item.get("source", ""))[:200]
                templates.append((embedding, quality, f"import:{source}"))
            if not templates:
                print(f"skipped {username!r}: no usable templates", file=sys.stderr)
                counts["skipped_invalid"] += 1
                continue
            templates.sort(key=lambda t: t[1], reverse=True)
            templates = templates[: args.max_templates]
            user = find_user(session, username)
            if user is None:
                user = User(username=username, username_key=normalize_username(username), password_hash=None)
                session.add(user)
                session.flush()
                counts["created"] += 1
            elif args.replace:
                session.execute(delete(FaceTemplate).where(FaceTemplate.user_id == user.id))
                counts["updated"] += 1
            else:
                counts["skipped_existing"] += 1
                continue
            for embedding, quality, source in templates:
                session.add(
                    FaceTemplate.seal(
                        embedding,
                        user_id=user.id,
                        model_version=model_version,
                        cipher=settings.template_cipher,
                        quality=quality,
                        source=source,
                        created_at=now,
                    )
                )
            counts["templates"] += len(templates)
            _audit(session, reasons.IMPORT_TEMPLATES, user, {"templates": len(templates)})
        session.commit()
    return (
        f"imported {counts['templates']} templates: {counts['created']} users created (no password; "
        f"use set-password), {counts['updated']} replaced, {counts['skipped_existing']} existing users skipped "
        f"(use --replace), {counts['skipped_invalid']} skipped as invalid"
    )


def migrate(settings: Settings, args: argparse.Namespace) -> str:
    from auth_web.migrate import upgrade

    try:
        upgrade(settings.database_url, args.revision, template_cipher=settings.template_cipher)
    except RuntimeError as error:
        # A migration that cannot proceed (e.g. plaintext templates and no FACEAUTH_TEMPLATE_KEY) says why.
        raise CommandError(str(error)) from None
    return f"database at revision {args.revision}"


def reencrypt_templates(settings: Settings, args: argparse.Namespace) -> str:
    """Key rotation: every template not sealed with the current FACEAUTH_TEMPLATE_KEY is decrypted with the old
    key that sealed it (FACEAUTH_TEMPLATE_OLD_KEYS) and sealed again with the current one.

    Idempotent (rows already under the current key are not touched) and safe while auth-web serves (it reads both
    keys); one transaction per batch, so an interrupted run keeps its progress and a rerun finishes it.
    """
    cipher = settings.template_cipher
    current = cipher.current_key_id
    reencrypted, batches = 0, 0
    unreadable: Counter[str] = Counter()
    last_id = 0
    with Session(make_engine(settings)) as session:
        already = session.scalar(select(func.count()).where(FaceTemplate.key_id == current)) or 0
        while True:
            statement = (
                select(FaceTemplate)
                .where(FaceTemplate.key_id != current, FaceTemplate.id > last_id)
                .order_by(FaceTemplate.id)
                .limit(args.batch_size)
                .with_for_update()
            )
            rows = session.scalars(statement).all()
            if not rows:
                break
            for row in rows:
                try:
                    reencrypted += row.reseal(cipher)
                except TemplateDecryptionError as error:
                    unreadable[f"{row.key_id} ({error.reason})"] += 1
            last_id = rows[-1].id
            session.commit()
            session.expunge_all()
            batches += 1
        # The OIDC signing keys are sealed with the same cipher: re-sealed too, or they would be lost with the old key.
        from auth_web import oidc_keys

        try:
            reencrypted_keys = oidc_keys.reseal_all(session, cipher)
            session.commit()
        except TemplateDecryptionError as error:
            session.rollback()
            unreadable[f"{error.key_id} ({error.reason}, an OIDC signing key)"] += 1
            reencrypted_keys = 0
        if reencrypted:
            _audit(session, reasons.TEMPLATES_REENCRYPT, None, {"templates": reencrypted, "key_id": current})
            session.commit()
        left = session.scalar(select(func.count()).where(FaceTemplate.key_id != current)) or 0
    report = (
        f"re-encrypted {reencrypted} templates under key {current} in {batches} batches; {already} were already "
        f"under it; {left} left under other keys"
    ) + (f"; {reencrypted_keys} OIDC signing keys re-sealed" if reencrypted_keys else "")
    if unreadable:
        details = ", ".join(f"{count} with key id {key}" for key, count in sorted(unreadable.items()))
        raise CommandError(
            f"{report}. Cannot decrypt {sum(unreadable.values())} templates: {details}. Add the key that sealed "
            "them to FACEAUTH_TEMPLATE_OLD_KEYS and run this again"
        )
    return report + (" (the old keys can now be removed from FACEAUTH_TEMPLATE_OLD_KEYS)" if not left else "")


def generate_template_key(args: argparse.Namespace) -> str:
    """A new FACEAUTH_TEMPLATE_KEY on stdout (its key id on stderr); reads no settings and no database."""
    key = generate_key()
    print(f"key id {key_id_for(parse_key(key))}", file=sys.stderr)
    return key


def serve(settings: Settings, args: argparse.Namespace) -> str:
    from auth_web.serve import run

    try:
        # Only serving talks to the model services; migrate and the other commands need no gRPC settings.
        settings.grpc_security.require()
    except SettingsError as error:
        raise CommandError(f"configuration error: {error}") from None
    _ensure_signing_key(settings)
    run(settings)
    return ""


def _ensure_signing_key(settings: Settings) -> None:
    """The OIDC signing key is made on first start (before the workers fork); a database that is not reachable (or
    not migrated) yet only postpones it to the first request that needs it."""
    from sqlalchemy.exc import SQLAlchemyError

    from auth_web import oidc_keys

    engine = make_engine(settings)
    try:
        with Session(engine) as session:
            row = oidc_keys.ensure_active_key(session, settings.template_cipher, settings.oidc_signing_alg)
            log.info("oidc_signing_key", extra={"fields": {"kid": row.kid, "alg": row.alg}})
    except SQLAlchemyError as error:
        log.warning("oidc_signing_key_postponed", extra={"fields": {"error": type(error).__name__}})
    finally:
        engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m auth_web", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the web app with gunicorn on AUTH_WEB_LISTEN")
    sub = commands.add_parser("migrate", help="apply the database migrations (alembic upgrade)")
    sub.add_argument("--revision", default="head")
    sub = commands.add_parser("create-admin", help="create the first administrator")
    sub.add_argument("--username", required=True)
    sub.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    sub.add_argument("--promote", action="store_true", help="make an existing user an admin")
    sub.add_argument(
        "--no-password", action="store_true", help="no password now: the admin sets it through the printed link"
    )
    sub = commands.add_parser("recovery-link", help="print a one-time link to set a password and/or enroll the face")
    sub.add_argument("username")
    sub.add_argument("--purpose", choices=RECOVERY_PURPOSES, default=RECOVERY_BOTH)
    sub.add_argument("--reset-face", action="store_true", help="remove the current face templates first")
    sub = commands.add_parser("unlock", help="clear a user's failed sign-ins (delays and locks)")
    sub.add_argument("username")
    sub = commands.add_parser("set-password", help="set a user's password (e.g. after import-templates)")
    sub.add_argument("username")
    sub.add_argument("--password-stdin", action="store_true")
    sub = commands.add_parser("import-templates", help="import a faceauth-templates/1 JSON file")
    sub.add_argument("file")
    sub.add_argument("--replace", action="store_true", help="replace the templates of existing users")
    sub.add_argument("--max-templates", type=int, default=10, help="keep at most this many per person (best first)")
    sub = commands.add_parser(
        "reencrypt-templates", help="key rotation: re-encrypt every template under the current FACEAUTH_TEMPLATE_KEY"
    )
    sub.add_argument("--batch-size", type=_positive_int, default=500, help="templates per transaction (500)")
    commands.add_parser("generate-template-key", help="print a new random FACEAUTH_TEMPLATE_KEY")
    oidc_cli.add_commands(commands)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


COMMANDS = {
    "serve": serve,
    "migrate": migrate,
    "create-admin": create_admin,
    "recovery-link": recovery_link,
    "unlock": unlock,
    "set-password": set_password,
    "import-templates": import_templates,
    "reencrypt-templates": reencrypt_templates,
    "client": lambda settings, args: _oidc(oidc_cli.client_command, settings, args),
    "rotate-signing-key": lambda settings, args: _oidc(oidc_cli.rotate_signing_key, settings, args),
}


def _oidc(command: Any, settings: Settings, args: argparse.Namespace) -> str:
    try:
        return str(command(settings, args))
    except oidc_cli.OidcCommandError as error:
        raise CommandError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "generate-template-key":
        # Needs no settings: it must work where FACEAUTH_TEMPLATE_KEY is still missing (production refuses that).
        print(generate_template_key(args))
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    if args.command != "serve":
        configure_logging("auth-web", os.environ.get("LOG_LEVEL", "WARNING"))
    try:
        message = COMMANDS[args.command](settings, args)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OperationalError as error:
        print(f"error: the database is unreachable ({error.orig})", file=sys.stderr)
        return 1
    if message:
        print(message)
    return 0
