"""Accounts without dead ends: re-authentication before sensitive changes (the copied-cookie attack), password and
e-mail changes, recovery links (single use, expiry, purpose, revocation, disabled users), admin actions, security
activity, self-service by e-mail against a local SMTP server, and the CLI's first-admin link."""

from __future__ import annotations

import datetime as dt
import re
import statistics
import time
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from auth_web.accounts import verify_password
from auth_web.models import AuditEvent, FaceTemplate, RecoveryLink, User
from conftest import REDIS_URL, free_port

from .conftest import PASSWORD, Browser, create_user, sign_in_directly, unique_username

NEW_PASSWORD = "a brand new passphrase 42"
LINK = re.compile(r"(?:https?://[^/\s\"<]+)?/recover/([A-Za-z0-9_-]{40,})")


def csrf(browser: Browser, path: str) -> str:
    return browser.refresh_csrf(path)


def make_stale(browser: Browser, seconds: int = 400) -> None:
    """The session's ceremony happened ``seconds`` ago (beyond the 300 s window)."""
    with browser.client.session_transaction() as session:
        session["auth_time"] = int(time.time()) - seconds


def copy_cookie(app: Flask, owner: Browser) -> Browser:
    """Another browser holding the owner's session cookie (stolen)."""
    thief = Browser(app.test_client())
    cookie = owner.client.get_cookie("faceauth_session")
    assert cookie is not None
    thief.client.set_cookie("faceauth_session", cookie.value)
    return thief


def admin_browser(app: Flask, db_engine) -> tuple[Browser, int]:  # type: ignore[no-untyped-def]
    admin_id = create_user(db_engine, unique_username("admin"), role="admin")
    admin = Browser(app.test_client())
    sign_in_directly(admin, admin_id)
    return admin, admin_id


def issue_link(admin: Browser, user_id: int, purpose: str) -> str:
    token = csrf(admin, "/admin/users")
    response = admin.client.post(
        f"/admin/users/{user_id}/recovery-link", data={"csrf_token": token, "purpose": purpose}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    match = LINK.search(response.get_data(as_text=True))
    assert match, "the link is on the page"
    return match.group(1)


def follow(app: Flask, token: str) -> tuple[Browser, Any]:
    """A new browser opens the link and chooses Continue."""
    browser = Browser(app.test_client())
    page = browser.client.get(f"/recover/{token}")
    if page.status_code != 200:
        return browser, page
    form_token = csrf(browser, f"/recover/{token}")
    return browser, browser.client.post(f"/recover/{token}", data={"csrf_token": form_token})


def events(engine, user_id: int, event: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        statement = select(AuditEvent).where(AuditEvent.user_id == user_id, AuditEvent.event == event)
        return list(session.scalars(statement.order_by(AuditEvent.id)))


def templates_of(engine, user_id: int) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return session.scalar(select(func.count()).where(FaceTemplate.user_id == user_id)) or 0


# -- re-authentication ------------------------------------------------------------------------------------------


def test_a_copied_cookie_with_an_old_ceremony_changes_nothing(app, db_engine, frames_a_login) -> None:  # type: ignore[no-untyped-def]
    """The issue's attack: a stolen session cookie whose ceremony is older than the window re-enrolls (page and
    API, forged frames), deletes the face, changes the password or the e-mail — all refused; the owner's
    account is unchanged, and the owner's own re-authentication kills the copied cookie."""
    username = unique_username("victim")
    user_id = create_user(db_engine, username, templates=3)
    owner = Browser(app.test_client())
    sign_in_directly(owner, user_id)
    make_stale(owner)
    thief = copy_cookie(app, owner)
    assert thief.signed_in_as() == username  # the cookie works as a session...

    page = thief.client.get("/enroll")  # ...but not for the enrollment page
    assert page.status_code == 302 and "/reauth?next=/enroll" in page.headers["Location"]
    thief.refresh_csrf("/account")
    response = thief.post_json("/api/enroll/challenge", {})
    body = response.get_json()
    assert response.status_code == 403 and body["error"] == "reauth_required"
    assert body["reauth_url"].startswith("/reauth?next=")
    forged = thief.submit("/api/enroll", "forged-nonce", frames_a_login[:6])
    assert forged.status_code == 403 and forged.get_json()["error"] == "reauth_required"
    token = thief.csrf
    response = thief.client.post("/enroll/delete", data={"csrf_token": token, "confirm": "delete"})
    assert response.status_code == 302 and "/reauth" in response.headers["Location"]
    response = thief.client.post(
        "/account/password",
        data={"csrf_token": token, "current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 302 and "/reauth" in response.headers["Location"]
    response = thief.client.post("/account/email", data={"csrf_token": token, "email": "thief@example.com"})
    assert response.status_code == 302 and "/reauth" in response.headers["Location"]

    assert templates_of(db_engine, user_id) == 3
    with Session(db_engine) as session:
        user = session.get(User, user_id)
        assert user.email is None and verify_password(user.password_hash, PASSWORD)
    assert {row.reason for row in events(db_engine, user_id, "step_up")} == {"NOT_FRESH"}
    assert not [row for row in events(db_engine, user_id, "enroll") if row.result == "success"]

    # The owner confirms it's them: the login page with the name fixed, the same login flow.
    page = owner.client.get("/reauth?next=/enroll").get_data(as_text=True)
    assert "Confirm it's you" in page and f'value="{username}" readonly' in page
    assert 'data-next="/enroll"' in page
    owner.refresh_csrf("/reauth?next=/enroll")
    nonce = owner.challenge(username)["nonce"]
    assert owner.submit("/api/login", nonce, frames_a_login[:6], PASSWORD).status_code == 200
    assert owner.client.get("/enroll").status_code == 200
    assert thief.signed_in_as() is None  # the session was rotated: the copied cookie is dead


def test_reauth_needs_a_signed_in_user_and_keeps_next_local(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    anonymous = Browser(app.test_client())
    response = anonymous.client.get("/reauth?next=/enroll")
    assert response.status_code == 302 and "/login?next=/enroll" in response.headers["Location"]
    browser = Browser(app.test_client())
    sign_in_directly(browser, create_user(db_engine, unique_username()))
    page = browser.client.get("/reauth?next=//evil.example/").get_data(as_text=True)
    assert "evil.example" not in page and 'data-next="/account"' in page


def test_password_change_needs_the_current_password_and_signs_out_elsewhere(app, db_engine, redis_client) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    user_id = create_user(db_engine, username)
    laptop, phone = Browser(app.test_client()), Browser(app.test_client())
    sign_in_directly(laptop, user_id)
    sign_in_directly(phone, user_id)
    token = csrf(laptop, "/account/password")
    wrong = laptop.client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current": "not my password at all",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    assert wrong.status_code == 400 and "not your current password" in wrong.get_data(as_text=True)
    weak = laptop.client.post(
        "/account/password", data={"csrf_token": token, "current": PASSWORD, "password": "short", "confirm": "short"}
    )
    assert weak.status_code == 400 and "at least" in weak.get_data(as_text=True)
    done = laptop.client.post(
        "/account/password",
        data={"csrf_token": token, "current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert done.status_code == 302
    with Session(db_engine) as session:
        assert verify_password(session.get(User, user_id).password_hash, NEW_PASSWORD)
    assert phone.signed_in_as() is None and laptop.signed_in_as() == username
    assert [row.reason for row in events(db_engine, user_id, "password_change")] == ["BAD_CURRENT_PASSWORD", "OK"]
    page = laptop.client.get("/account").get_data(as_text=True)
    assert "Security activity" in page and "Password changed" in page


def test_email_is_validated_unique_case_insensitively_and_listed(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    first, second = Browser(app.test_client()), Browser(app.test_client())
    first_id = create_user(db_engine, unique_username())
    sign_in_directly(first, first_id)
    sign_in_directly(second, create_user(db_engine, unique_username()))
    address = f"{unique_username('mail')}@Example.com"
    token = csrf(first, "/account")
    assert first.client.post("/account/email", data={"csrf_token": token, "email": "not an address"}).status_code == 302
    assert first.client.post("/account/email", data={"csrf_token": token, "email": address}).status_code == 302
    token = csrf(second, "/account")
    second.client.post("/account/email", data={"csrf_token": token, "email": address.upper()})
    assert "belongs to another account" in second.client.get("/account").get_data(as_text=True)
    with Session(db_engine) as session:
        user = session.get(User, first_id)
        assert user.email == address and user.email_key == address.casefold()
    assert "E-mail address added" in first.client.get("/account").get_data(as_text=True)


# -- recovery links ---------------------------------------------------------------------------------------------


def test_a_password_link_works_once_for_its_purpose_only(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    admin, admin_id = admin_browser(app, db_engine)
    username = unique_username()
    user_id = create_user(db_engine, username, templates=2)
    token = issue_link(admin, user_id, "password")
    with Session(db_engine) as session:
        row = session.scalar(select(RecoveryLink).where(RecoveryLink.user_id == user_id))
        assert row.token_hash != token and len(row.token_hash) == 64  # stored hashed

    # A GET (a mail scanner) does not use it.
    assert Browser(app.test_client()).client.get(f"/recover/{token}").status_code == 200
    browser, response = follow(app, token)
    assert response.status_code == 302 and response.headers["Location"].endswith("/recover")
    # The recovery session is no sign-in: no account page, no enrollment (not its purpose).
    assert browser.client.get("/account").status_code == 302
    browser.refresh_csrf("/recover")
    assert browser.post_json("/api/enroll/challenge", {}).status_code == 401
    weak = browser.client.post("/recover/password", data={"csrf_token": browser.csrf, "password": "x", "confirm": "x"})
    assert weak.status_code == 400
    done = browser.client.post(
        "/recover/password", data={"csrf_token": browser.csrf, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert browser.client.get("/recover").status_code == 302  # the recovery session ended
    with Session(db_engine) as session:
        assert verify_password(session.get(User, user_id).password_hash, NEW_PASSWORD)
    assert templates_of(db_engine, user_id) == 2  # a password link leaves the face alone

    # Reused: refused with a clear page, audited.
    again = Browser(app.test_client()).client.get(f"/recover/{token}")
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    _, response = follow(app, token)
    assert response.status_code == 410
    uses = events(db_engine, user_id, "recovery_use")
    assert [(row.result, row.reason) for row in uses] == [("success", "OK")]
    issued = events(db_engine, user_id, "recovery_issue")
    assert issued[-1].actor_user_id == admin_id and issued[-1].details["purpose"] == "password"
    assert "token" not in str(issued[-1].details) and token not in str(issued[-1].details)


def test_expired_revoked_unknown_and_disabled_links_are_refused(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    admin, _ = admin_browser(app, db_engine)
    user_id = create_user(db_engine, unique_username(), templates=1)
    older = issue_link(admin, user_id, "both")
    newer = issue_link(admin, user_id, "both")  # revokes the older one for the same purpose
    other_purpose = issue_link(admin, user_id, "password")  # does not revoke the "both" one
    _, response = follow(app, older)
    assert response.status_code == 410 and "replaced" in response.get_data(as_text=True)
    with Session(db_engine) as session:
        session.execute(
            update(RecoveryLink)
            .where(RecoveryLink.user_id == user_id, RecoveryLink.purpose == "both", RecoveryLink.revoked_at.is_(None))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.commit()
    _, response = follow(app, newer)
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    _, response = follow(app, "A" * 43)
    assert response.status_code == 404
    with Session(db_engine) as session:
        session.get(User, user_id).status = "disabled"
        session.commit()
    _, response = follow(app, other_purpose)
    assert response.status_code == 403 and "disabled" in response.get_data(as_text=True)


def test_a_face_link_cannot_set_the_password(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    admin, _ = admin_browser(app, db_engine)
    user_id = create_user(db_engine, unique_username())
    browser, response = follow(app, issue_link(admin, user_id, "face"))
    assert response.status_code == 302
    page = browser.client.get("/recover").get_data(as_text=True)
    assert 'id="enroll-form"' in page and "/api/enroll/challenge" in page
    browser.refresh_csrf("/recover")
    refused = browser.client.post(
        "/recover/password", data={"csrf_token": browser.csrf, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/login")
    with Session(db_engine) as session:
        assert verify_password(session.get(User, user_id).password_hash, PASSWORD)
    # Its challenge is issued for the link's user (the capture itself needs the real services: the e2e test).
    assert browser.post_json("/api/enroll/challenge", {}).status_code == 200


# -- admin actions ----------------------------------------------------------------------------------------------


def test_admin_unlock_and_reset_face_are_audited_with_the_admin(app, db_engine, redis_client) -> None:  # type: ignore[no-untyped-def]
    admin, admin_id = admin_browser(app, db_engine)
    username = unique_username()
    user_id = create_user(db_engine, username, templates=3)
    victim = Browser(app.test_client())
    sign_in_directly(victim, user_id)
    with app.app_context():
        from auth_web import context

        failures = context.failure_log()
        for _ in range(3):
            failures.record_failure(username, "203.0.113.7")
        assert failures.verdict(username, "203.0.113.7").retry_after == 0  # the fixture's budgets: counted only
        prefix = failures.prefix
    assert list(redis_client.scan_iter(match=f"{prefix}pair:*"))
    token = csrf(admin, "/admin/users")
    assert admin.client.post(f"/admin/users/{user_id}/unlock", data={"csrf_token": token}).status_code == 302
    assert not list(redis_client.scan_iter(match=f"{prefix}pair:*"))
    response = admin.client.post(f"/admin/users/{user_id}/reset-face", data={"csrf_token": token})
    assert response.status_code == 200 and LINK.search(response.get_data(as_text=True))
    assert templates_of(db_engine, user_id) == 0
    assert victim.signed_in_as() is None  # signed out everywhere
    for event in ("admin_unlock", "admin_reset_face", "recovery_issue"):
        rows = events(db_engine, user_id, event)
        assert rows and rows[-1].actor_user_id == admin_id, event
    assert events(db_engine, user_id, "recovery_issue")[-1].details["purpose"] == "face"


# -- self-service by e-mail -------------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def wait(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def mail_settings(port: int) -> dict[str, object]:
    """auth-web's SMTP settings for the local test server on ``port`` (plain SMTP, no login)."""
    return {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none", "smtp_from": "faceauth@example.com"}


def test_self_service_mails_a_password_link_and_answers_the_same_for_everyone(
    make_app, fakes, db_engine, smtp_server
) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtp_server
    app = make_app(
        liveness_target=fakes.address,
        recognition_target=fakes.address,
        **mail_settings(port),
        public_url="https://faceauth.example",
    )
    enrolled, bare = unique_username("mailed"), unique_username("bare")
    enrolled_id = create_user(db_engine, enrolled, templates=2)
    bare_id = create_user(db_engine, bare)
    with Session(db_engine) as session:
        for user_id, name in ((enrolled_id, enrolled), (bare_id, bare)):
            user = session.get(User, user_id)
            user.email, user.email_key = f"{name}@example.com", f"{name}@example.com"
        session.commit()
    page = Browser(app.test_client()).client.get("/login").get_data(as_text=True)
    assert "Forgot password or face?" in page

    def ask(identifier: str) -> tuple[str, float]:
        browser = Browser(app.test_client())
        token = csrf(browser, "/recover/forgot")
        started = time.perf_counter()
        response = browser.client.post("/recover/forgot", data={"csrf_token": token, "identifier": identifier})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        text = re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", text)
        text = re.sub(r'<meta name="csrf-token" content="[^"]+">', "", text)
        return text, elapsed

    known, _ = ask(enrolled)
    unknown, _ = ask(unique_username("nobody"))
    assert known == unknown and "we sent it a link" in known
    inbox.wait(1)
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == [f"{enrolled}@example.com"]
    body = message.get_payload(decode=True).decode()
    match = LINK.search(body)
    assert match and "https://faceauth.example/recover/" in body
    with Session(db_engine) as session:
        link = session.scalar(select(RecoveryLink).where(RecoveryLink.user_id == enrolled_id))
        assert link.purpose == "password" and link.channel == "email"  # the mailbox never replaces a face

    # By address, case-insensitively; an account without a face may enroll one with the mailed link.
    ask(f"{bare}@EXAMPLE.com")
    inbox.wait(2)
    assert len(inbox.messages) == 2
    with Session(db_engine) as session:
        link = session.scalar(select(RecoveryLink).where(RecoveryLink.user_id == bare_id))
        assert link.purpose == "both"
    time.sleep(0.3)
    assert len(inbox.messages) == 2  # nothing for the unknown name
    with Session(db_engine) as session:
        reasons_seen = session.scalars(
            select(AuditEvent.reason).where(AuditEvent.event == "recovery_request").order_by(AuditEvent.id)
        ).all()
    assert "NO_ADDRESS" in reasons_seen and reasons_seen.count("OK") >= 2


def test_self_service_answers_as_fast_for_an_unknown_name_as_for_a_known_one(make_app, db_engine, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """The lookup, the link and the mail run after the answer: the answer's time does not depend on them (medians
    of interleaved requests; the bound is generous against a shared machine's noise, yet a synchronous answer
    would exceed it for a known address: a link written to the database and an SMTP conversation)."""
    inbox, port = smtp_server
    app = make_app(
        **mail_settings(port),
        rate_limit_recovery_per_address="1000/hour",
    )
    name = unique_username("timed")
    user_id = create_user(db_engine, name, templates=1)
    with Session(db_engine) as session:
        user = session.get(User, user_id)
        user.email = user.email_key = f"{name}@example.com"
        session.commit()
    browser = Browser(app.test_client())
    token = csrf(browser, "/recover/forgot")
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(7):
        for kind, identifier in (("known", name), ("unknown", unique_username("nobody"))):
            started = time.perf_counter()
            response = browser.client.post("/recover/forgot", data={"csrf_token": token, "identifier": identifier})
            times[kind].append(time.perf_counter() - started)
            assert response.status_code == 200
    inbox.wait(7, timeout=30)
    assert len(inbox.messages) == 7  # the known name's mails did go out, after their answers
    known, unknown = statistics.median(times["known"]), statistics.median(times["unknown"])
    assert abs(known - unknown) < 0.1, times


def test_self_service_is_off_without_smtp_and_rate_limited_with_it(make_app, fakes, smtp_server) -> None:  # type: ignore[no-untyped-def]
    off = make_app(liveness_target=fakes.address, recognition_target=fakes.address)
    browser = Browser(off.test_client())
    assert "Forgot password or face?" not in browser.client.get("/login").get_data(as_text=True)
    assert browser.client.get("/recover/forgot").status_code == 404
    _, port = smtp_server
    on = make_app(
        **mail_settings(port),
        rate_limit_recovery_per_address="2/hour",
    )
    browser = Browser(on.test_client())
    statuses = []
    for _ in range(3):
        token = csrf(browser, "/recover/forgot")
        response = browser.client.post("/recover/forgot", data={"csrf_token": token, "identifier": "nobody-here"})
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429]


# -- the CLI ----------------------------------------------------------------------------------------------------


def test_create_admin_prints_a_one_time_link_that_sets_the_password_then_asks_for_the_face(
    app, database_url: str, db_engine, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    from .test_cli import run_cli_in_process

    env = {"DATABASE_URL": database_url, "AUTH_PUBLIC_URL": "https://auth.example"}
    name = unique_username("root")
    result = run_cli_in_process(monkeypatch, capsys, "create-admin", "--username", name, "--no-password", env=env)
    assert result.returncode == 0, result.stderr
    assert "Signing in needs a face" in result.stdout and "set your password, then enroll your face" in result.stdout
    assert "https://auth.example/login" in result.stdout
    match = LINK.search(result.stdout)
    assert match and match.group(0).startswith("https://auth.example/recover/")
    with Session(db_engine) as session:
        admin = session.scalar(select(User).where(User.username == name))
        assert admin.role == "admin" and admin.password_hash is None
        admin_id = admin.id
    assert events(db_engine, admin_id, "recovery_issue")[-1].details["channel"] == "cli"

    browser, response = follow(app, match.group(1))
    assert response.status_code == 302
    page = browser.client.get("/recover").get_data(as_text=True)
    assert "Step 1 of 2" in page
    browser.refresh_csrf("/recover")
    done = browser.client.post(
        "/recover/password", data={"csrf_token": browser.csrf, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert done.status_code == 302 and done.headers["Location"].endswith("/recover")  # next: the face
    page = browser.client.get("/recover").get_data(as_text=True)
    assert 'id="enroll-form"' in page and f"({name})" in page
    assert browser.post_json("/api/enroll/challenge", {}).status_code == 200

    # A new link for the same purpose (lost the first one) revokes it; the operator's text says how.
    assert f"recovery-link {name} --purpose both" in result.stdout
    again = run_cli_in_process(monkeypatch, capsys, "recovery-link", name, "--purpose", "password", env=env)
    assert again.returncode == 0 and LINK.search(again.stdout)
    unknown = run_cli_in_process(monkeypatch, capsys, "recovery-link", "nobody-" + name, env=env)
    assert unknown.returncode == 1 and "no user" in unknown.stderr
    unlocked = run_cli_in_process(monkeypatch, capsys, "unlock", name, env={**env, "REDIS_URL": REDIS_URL})
    assert unlocked.returncode == 0, unlocked.stderr
    assert events(db_engine, admin_id, "admin_unlock")


def test_create_admin_with_a_password_prints_an_enrollment_link(
    database_url: str, db_engine, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    from .test_cli import run_cli_in_process

    name = unique_username("root")
    result = run_cli_in_process(
        monkeypatch,
        capsys,
        "create-admin",
        "--username",
        name,
        "--password-stdin",
        env={"DATABASE_URL": database_url},
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "Choose Continue and enroll your face" in result.stdout and "https://localhost:8443/recover/" in result.stdout
    )
    with Session(db_engine) as session:
        link = session.scalar(
            select(RecoveryLink).join(User, User.id == RecoveryLink.user_id).where(User.username == name)
        )
        assert link.purpose == "face"


def test_no_link_is_handed_out_for_a_disabled_account(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    admin, _ = admin_browser(app, db_engine)
    user_id = create_user(db_engine, unique_username(), templates=2)
    with Session(db_engine) as session:
        session.get(User, user_id).status = "disabled"
        session.commit()
    token = csrf(admin, "/admin/users")
    response = admin.client.post(f"/admin/users/{user_id}/recovery-link", data={"csrf_token": token, "purpose": "both"})
    assert response.status_code == 302 and not LINK.search(admin.client.get("/admin/users").get_data(as_text=True))
    response = admin.client.post(f"/admin/users/{user_id}/reset-face", data={"csrf_token": token})
    assert response.status_code == 302 and templates_of(db_engine, user_id) == 0
    with Session(db_engine) as session:
        assert session.scalar(select(func.count()).where(RecoveryLink.user_id == user_id)) == 0


def test_an_account_without_a_password_sets_its_first_one_without_a_current_one(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    user_id = create_user(db_engine, unique_username(), password=None, templates=1)
    browser = Browser(app.test_client())
    sign_in_directly(browser, user_id)
    page = browser.client.get("/account/password").get_data(as_text=True)
    assert "Set a password" in page and 'name="current"' not in page
    token = browser.csrf = csrf(browser, "/account/password")
    response = browser.client.post(
        "/account/password", data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert response.status_code == 302
    with Session(db_engine) as session:
        assert verify_password(session.get(User, user_id).password_hash, NEW_PASSWORD)


def test_security_activity_is_read_from_the_audit_log_newest_first(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    from auth_web import audit, reasons

    user_id = create_user(db_engine, unique_username())
    other_id = create_user(db_engine, unique_username())
    with app.app_context():
        for event in (reasons.PASSKEY_ADD, reasons.PASSKEY_RENAME, reasons.PASSKEY_REMOVE):
            audit.record(event, reasons.SUCCESS, reasons.OK, user_id=user_id, client_address="198.51.100.4")
        audit.record(reasons.PASSKEY_ADD, reasons.FAILURE, "PASSKEY_INVALID", user_id=user_id)  # not a change
        audit.record(reasons.ENROLL_DELETE, reasons.SUCCESS, reasons.OK, user_id=other_id)  # another account's
    browser = Browser(app.test_client())
    sign_in_directly(browser, user_id)
    page = browser.client.get("/account").get_data(as_text=True)
    table = page[page.index('id="security-activity"') :]
    table = table[: table.index("</table>")]
    assert table.index("Passkey removed") < table.index("Passkey renamed") < table.index("Passkey added")
    assert table.count("Passkey added") == 1 and "Face data deleted" not in table and "198.51.100.4" in table
