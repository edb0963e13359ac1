"""Operator commands of the OpenID Connect provider: ``client create|list|delete|rotate-secret`` and
``rotate-signing-key`` (registered in cli.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlalchemy.orm import Session

from auth_web import audit, oidc_clients, oidc_keys, reasons
from auth_web.config import Settings
from auth_web.db import make_engine


class OidcCommandError(Exception):
    """Raised as cli.CommandError by the caller."""


def add_commands(commands: Any) -> None:
    client = commands.add_parser("client", help="the OpenID Connect client registry")
    actions = client.add_subparsers(dest="client_command", required=True)
    create = actions.add_parser("create", help="register a client; a confidential client's secret is shown once")
    create.add_argument("--name", required=True)
    create.add_argument("--client-id", help="default: random")
    create.add_argument("--redirect-uri", action="append", required=True, help="exact match; repeat for several")
    create.add_argument("--post-logout-redirect-uri", action="append", default=[])
    create.add_argument(
        "--public", action="store_true", help="a public client (no secret: a browser or mobile app; PKCE S256)"
    )
    create.add_argument(
        "--auth-method", choices=["client_secret_basic", "client_secret_post"], default="client_secret_basic"
    )
    create.add_argument("--scopes", default=oidc_clients.DEFAULT_SCOPES)
    create.add_argument("--first-party", action="store_true", help="no consent screen")
    create.add_argument("--refresh-tokens", action="store_true", help="issue rotating refresh tokens")
    create.add_argument("--allow-http", action="store_true", help="allow http:// redirect URIs on non-loopback hosts")
    create.add_argument(
        "--secret-stdin", action="store_true", help="take the secret from the first stdin line (>= 32 characters)"
    )
    create.add_argument("--secret-file", help="take the secret from the first line of this file (>= 32 characters)")
    create.add_argument("--replace", action="store_true", help="replace a client with the same --client-id")
    actions.add_parser("list", help="the registered clients")
    delete = actions.add_parser("delete", help="remove a client (its consents and refresh tokens go with it)")
    delete.add_argument("client_id")
    rotate = actions.add_parser("rotate-secret", help="a new secret (shown once); the old one stops working")
    rotate.add_argument("client_id")
    commands.add_parser(
        "rotate-signing-key",
        help="a new ID-token signing key; the old one keeps verifying for AUTH_OIDC_RETIRED_KEY_SECONDS",
    )


def _audit(session: Session, event: str, details: dict[str, Any]) -> None:
    audit.record(event, reasons.SUCCESS, reasons.OK, details=details, db_session=session, client_address="cli")


def client_command(settings: Settings, args: argparse.Namespace) -> str:
    with Session(make_engine(settings)) as session:
        if args.client_command == "list":
            clients = oidc_clients.list_clients(session)
            if not clients:
                return "no clients"
            return "\n".join(oidc_clients.describe(client) for client in clients)
        if args.client_command == "create":
            secret = _given_secret(args)
            existing = oidc_clients.find_client(session, args.client_id) if args.client_id else None
            if existing is not None and args.replace:
                session.delete(existing)
                session.flush()
            try:
                created = oidc_clients.create_client(
                    session,
                    name=args.name,
                    client_id=args.client_id,
                    redirect_uris=args.redirect_uri,
                    post_logout_redirect_uris=args.post_logout_redirect_uri,
                    auth_method="none" if args.public else args.auth_method,
                    scopes=args.scopes,
                    first_party=args.first_party,
                    refresh_tokens=args.refresh_tokens,
                    allow_http=args.allow_http,
                    secret=secret,
                )
            except oidc_clients.ClientError as error:
                raise OidcCommandError(str(error)) from None
            _audit(session, reasons.CLIENT_CREATE, {"client": created.client.client_id})
            session.commit()
            lines = [f"client_id: {created.client.client_id}"]
            if created.secret and secret is None:
                lines.append(f"client_secret: {created.secret}")
                lines.append("(the secret is shown only now; faceauth keeps a hash of it)")
            else:
                lines.append("public client: no secret; PKCE with S256 is required")
            return "\n".join(lines)
        client = oidc_clients.find_client(session, args.client_id)
        if client is None:
            raise OidcCommandError(f"no client {args.client_id!r}")
        if args.client_command == "delete":
            session.delete(client)
            _audit(session, reasons.CLIENT_DELETE, {"client": args.client_id})
            session.commit()
            return f"client {args.client_id!r} deleted, with its consents and refresh tokens"
        try:
            secret = oidc_clients.rotate_secret(session, client)
        except oidc_clients.ClientError as error:
            raise OidcCommandError(str(error)) from None
        _audit(session, reasons.CLIENT_ROTATE_SECRET, {"client": args.client_id})
        session.commit()
        return f"client_secret: {secret}\n(the old secret no longer works; this one is shown only now)"


def _given_secret(args: argparse.Namespace) -> str | None:
    if args.secret_stdin:
        return sys.stdin.readline().rstrip("\n")
    if args.secret_file:
        try:
            with open(args.secret_file, encoding="utf-8") as handle:
                return handle.readline().strip()
        except OSError as error:
            raise OidcCommandError(f"cannot read {args.secret_file}: {error.strerror}") from None
    return None


def rotate_signing_key(settings: Settings, args: argparse.Namespace) -> str:
    with Session(make_engine(settings)) as session:
        new, retired, deleted = oidc_keys.rotate(
            session, settings.template_cipher, settings.oidc_signing_alg, settings.oidc_retired_key_seconds
        )
        kid, alg = new.kid, new.alg
        _audit(session, reasons.SIGNING_KEY_ROTATE, {"kid": kid, "retired": retired, "deleted": deleted})
        session.commit()
    return (
        f"new signing key {kid} ({alg}); {retired} retired (still in JWKS for "
        f"{settings.oidc_retired_key_seconds} s), {deleted} expired keys deleted"
    )
