"""Accounts without dead ends, in a real browser against the whole stack: the first admin from the CLI's link to a
face sign-in; a stale session refused a re-enrollment; a recovery link → re-enroll → sign in; the link reused →
refused."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable

import redis
from selenium.webdriver.common.by import By
from sqlalchemy.engine import Engine

from .browser import Browser
from .conftest import PASSWORD, audit_events, template_count, user_id_of
from .stack import Stack

LINK = re.compile(r"https?://\S+/recover/[A-Za-z0-9_-]{40,}")


def cli(stack: Stack, *args: str, password: str | None = None) -> str:
    """``python -m auth_web ...`` against the stack's database and Redis, with its public URL; stdout."""
    env = {
        **os.environ,
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": stack.env["REDIS_URL"],
        "AUTH_REDIS_PREFIX": stack.redis_prefix,
        "AUTH_PUBLIC_URL": stack.base_url,
        "FACEAUTH_SECRET_KEY": stack.env["FACEAUTH_SECRET_KEY"],
    }
    if password is not None:
        env["FACEAUTH_PASSWORD"] = password
    result = subprocess.run(
        [sys.executable, "-m", "auth_web", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def link_in(text: str) -> str:
    match = LINK.search(text)
    assert match, text
    return match.group(0)


def continue_link(browser: Browser, url: str) -> None:
    browser.driver.get(url)
    browser.driver.find_element(By.ID, "recovery-continue").click()
    browser.wait_for_path("/recover")


def test_first_admin_from_the_cli_link_to_a_face_sign_in(
    stack: Stack, browser: Callable[..., Browser], db: Engine, output_dir
) -> None:  # type: ignore[no-untyped-def]
    """create-admin without a password prints a link; the admin sets the password and enrolls there, then signs in
    with password and face — no dead end."""
    username = f"root_{secrets.token_hex(3)}"
    printed = cli(stack, "create-admin", "--username", username, "--no-password")
    assert "Open this one-time link" in printed and "set your password, then enroll your face" in printed
    enrolling = browser("a_enroll")
    continue_link(enrolling, link_in(printed))
    enrolling.fill("#password", PASSWORD)
    enrolling.fill("#confirm", PASSWORD)
    enrolling.driver.find_element(By.CSS_SELECTOR, "#recovery-password-form button[type=submit]").click()
    enrolling.wait(lambda d: d.find_elements(By.ID, "enroll-form"), message="no enrollment step after the password")
    kind, message = enrolling.enroll()
    assert kind == "ok", (message, [(e.reason, e.details) for e in audit_events(db, username, "enroll")])
    enrolling.wait_for_path("/login")
    assert "Sign in now" in enrolling.page_text()
    user_id = user_id_of(db, username)
    assert user_id is not None and template_count(db, user_id) >= 3

    signing_in = browser("a_login")
    kind, message = signing_in.login(stack.base_url, username, PASSWORD)
    assert kind == "ok", (message, [(e.reason, e.details) for e in audit_events(db, username)])
    signing_in.wait_for_path("/account")
    assert "Users" in signing_in.text("header nav")  # an admin
    signing_in.screenshot(output_dir / "accounts-first-admin.png")


def test_stale_session_refused_then_recovery_link_reenrolls_and_link_reuse_refused(
    stack: Stack, browser: Callable[..., Browser], db: Engine, redis_client: redis.Redis, output_dir
) -> None:  # type: ignore[no-untyped-def]
    username = f"bob_{secrets.token_hex(3)}"
    owner = browser("a_enroll")
    owner.register(stack.base_url, username, PASSWORD)
    owner.wait_for_path("/enroll")
    kind, message = owner.enroll()
    assert kind == "ok", message
    owner.wait_for_path("/account")
    user_id = user_id_of(db, username)
    assert user_id is not None

    # The session's ceremony is now 10 minutes old (a copied cookie, a laptop left open).
    cookie = owner.session_cookie()
    assert cookie is not None
    key = f"{stack.redis_prefix}session:{hashlib.sha256(cookie['value'].encode()).hexdigest()}"
    stored = json.loads(redis_client.get(key))
    stored["data"]["auth_time"] -= 600
    redis_client.set(key, json.dumps(stored), keepttl=True)
    owner.open(stack.base_url, "/enroll")
    owner.wait_for_path("/reauth")
    assert "Confirm it's you" in owner.page_text()
    assert owner.driver.find_element(By.ID, "username").get_attribute("readonly") is not None
    status = owner.driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch('/api/enroll/challenge', {method: 'POST', credentials: 'same-origin',
          headers: {'Content-Type': 'application/json',
                    'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
          body: '{}'}).then(r => r.json().then(b => done([r.status, b.error])));"""
    )
    assert status == [403, "reauth_required"]
    assert [e.reason for e in audit_events(db, username, "step_up")] == ["NOT_FRESH", "NOT_FRESH"]
    assert template_count(db, user_id) >= 3  # nothing replaced: the owner's own face still signs in
    own_face = browser("a_login")
    kind, message = own_face.login(stack.base_url, username, PASSWORD)
    assert kind == "ok", (message, [(e.reason, e.details) for e in audit_events(db, username)])
    own_face.wait_for_path("/account")

    # An operator resets the face and hands out a link: the user re-enrolls through it and signs in.
    url = link_in(cli(stack, "recovery-link", username, "--purpose", "face", "--reset-face"))
    assert template_count(db, user_id) == 0
    recovering = browser("a_enroll")
    continue_link(recovering, url)
    kind, message = recovering.enroll()
    assert kind == "ok", message
    recovering.wait_for_path("/login")
    assert template_count(db, user_id) >= 3
    signing_in = browser("a_login")
    kind, message = signing_in.login(stack.base_url, username, PASSWORD)
    assert kind == "ok", (message, [(e.reason, e.details) for e in audit_events(db, username)])
    signing_in.wait_for_path("/account")
    activity = signing_in.text("#security-activity")
    assert "Face enrolled with a recovery link" in activity and "Face data reset by an administrator" in activity

    # The same link again: refused with a clear page.
    again = browser(None)
    again.driver.get(url)
    time.sleep(0.2)
    assert "already used" in again.text("#recovery-refused")
    again.screenshot(output_dir / "accounts-link-reused.png")
