"""Passkeys in the browser: Chromium's virtual authenticator (WebDriver's WebAuthn extension) stands in for a
security key or platform authenticator; the page is the real one, served by the gateway over TLS at
https://localhost:<port> (a secure context; the RP id defaults to the origin's host, ``localhost``).

10: a wrong password fails before the camera starts (no getUserMedia call at all).
11: register a passkey on the account page → sign in with passkey+face (AUTH_FACTORS=passkey+face).
12: the face fails (someone else's face after A's password) → "Use your passkey instead" signs in; with
    AUTH_PASSKEY_FALLBACK=false the offer is not made and the endpoint refuses.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import Credential, VirtualAuthenticatorOptions
from sqlalchemy.engine import Engine

from .browser import Browser
from .conftest import PASSWORD, PersonA, audit_events
from .stack import Stack

#: Every e2e browser signs in from 127.0.0.1: these scenarios' own failures must not delay one another.
OWN_SETTINGS = {"AUTH_THROTTLE_FREE_ATTEMPTS": "1000", "AUTH_THROTTLE_ADDRESS_FREE_ATTEMPTS": "1000"}
#: Counts the page's camera requests (window.__faceauthCameraCalls).
CAMERA_COUNTER = (
    "window.__faceauthCameraCalls = 0;"
    "(function () { var real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);"
    " navigator.mediaDevices.getUserMedia = function (c) { window.__faceauthCameraCalls += 1; return real(c); };"
    "})();"
)
FIRST_FACTOR_FAILED = "We couldn't sign you in. Check your username and password and try again."


def authenticator(person: Browser) -> None:
    """A CTAP2 platform authenticator with resident keys and user verification (a PIN or fingerprint that
    always succeeds)."""
    person.driver.add_virtual_authenticator(
        VirtualAuthenticatorOptions(
            protocol=VirtualAuthenticatorOptions.Protocol.CTAP2,
            transport=VirtualAuthenticatorOptions.Transport.INTERNAL,
            has_resident_key=True,
            has_user_verification=True,
            is_user_consenting=True,
            is_user_verified=True,
        )
    )


@pytest.fixture
def settings(stack: Stack) -> Iterator[Callable[..., None]]:
    """auth-web restarted with these scenarios' settings (plus the test's own); the stack's settings afterwards."""

    def apply(**changes: str) -> None:
        stack.restart_auth_web(**OWN_SETTINGS, **changes)

    yield apply
    stack.restart_auth_web()


def sign_in_with_password_and_face(person: Browser, stack: Stack, username: str) -> None:
    kind, message = person.login(stack.base_url, username, PASSWORD)
    assert kind == "ok", (message, person.console_log())
    person.wait_for_path("/account")


def passkey_names(person: Browser) -> list[str]:
    """The names in the account page's passkey list (each in its rename field)."""
    fields = person.driver.find_elements(By.CSS_SELECTOR, "#passkey-list input[name=name]")
    return [field.get_attribute("value") or "" for field in fields]


def add_passkey(person: Browser, stack: Stack, name: str) -> None:
    person.open(stack.base_url, "/account")
    person.fill("#passkey-name", name)
    person.driver.find_element(By.ID, "passkey-add-button").click()
    try:
        person.wait(lambda d: name in passkey_names(person))
    except Exception as error:
        raise AssertionError(
            f"no passkey {name!r} ({person.text('#passkey-status')!r})\n{person.console_log()}"
        ) from error


def with_a_passkey(person: Browser, stack: Stack, username: str, name: str) -> Browser:
    """``person`` with a virtual authenticator, signed in with password and face, a passkey ``name`` added."""
    authenticator(person)
    sign_in_with_password_and_face(person, stack, username)
    add_passkey(person, stack, name)
    return person


def test_10_a_wrong_password_fails_before_the_camera_starts(
    person_a: PersonA, settings: Callable[..., None], stack: Stack, browser: Callable[..., Browser], db: Engine
) -> None:
    settings()
    person = browser("a_login", scripts=(CAMERA_COUNTER,))
    kind, message = person.login(stack.base_url, person_a.username, "not the password at all")
    assert (kind, message) == ("error", FIRST_FACTOR_FAILED)
    assert person.driver.execute_script("return window.__faceauthCameraCalls;") == 0
    assert person.text("#capture-placeholder") == "Your camera turns on when you start."
    assert audit_events(db, person_a.username)[-1].reason == "BAD_PASSWORD"
    # The right password: the camera starts and the face signs in.
    kind, message = person.login(stack.base_url, person_a.username, PASSWORD)
    assert kind == "ok", message


def test_11_register_a_passkey_then_sign_in_with_passkey_and_face(
    person_a: PersonA,
    settings: Callable[..., None],
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    settings()
    name = f"Laptop {secrets.token_hex(2)}"
    person = with_a_passkey(browser("a_login"), stack, person_a.username, name)
    assert audit_events(db, person_a.username, "passkey_add")[-1].reason == "OK"
    person.screenshot(output_dir / "11_account_passkeys.png")

    settings(AUTH_FACTORS="passkey+face")
    person.sign_out()
    person.open(stack.base_url, "/login")
    assert person.driver.find_elements(By.ID, "password") == []
    person.fill("#username", person_a.username)
    before = len(audit_events(db, person_a.username))
    kind, message = person.capture()
    events = audit_events(db, person_a.username)[before:]
    assert kind == "ok", (message, [(e.reason, e.details) for e in events], person.console_log())
    person.wait_for_path("/account")
    assert [(e.result, e.reason, e.details.get("steps")) for e in events] == [("success", "OK", ["passkey", "face"])]
    assert "never" not in person.text("#passkey-list")  # last used: now


def test_12_face_fails_then_the_passkey_signs_in_unless_policy_forbids_it(
    person_a: PersonA,
    settings: Callable[..., None],
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    settings()
    # A registers a passkey in their own browser ...
    owner = with_a_passkey(browser("a_login"), stack, person_a.username, f"Phone {secrets.token_hex(2)}")
    [credential] = owner.driver.get_credentials()
    # ... and uses it where the camera sees someone else (a stand-in for a face that no longer matches).
    elsewhere = browser("b_login")
    authenticator(elsewhere)
    elsewhere.driver.add_credential(Credential.from_dict(credential.to_dict()))
    before = len(audit_events(db, person_a.username))
    kind, message = elsewhere.login(stack.base_url, person_a.username, PASSWORD)
    assert kind == "error", message
    assert "use your passkey instead" in message
    elsewhere.wait(lambda d: d.find_element(By.ID, "fallback").is_displayed(), message="no fallback offered")
    elsewhere.screenshot(output_dir / "12_passkey_fallback_offered.png")
    elsewhere.driver.find_element(By.ID, "fallback-button").click()
    elsewhere.wait_for_path("/account")
    events = audit_events(db, person_a.username)[before:]
    assert [(e.result, e.reason) for e in events] == [("failure", "VERIFY_NO_MATCH"), ("success", "PASSKEY_FALLBACK")]
    assert events[1].details["amr"] == ["pwd", "hwk", "mfa"]

    # Not allowed: no offer, and the endpoint refuses.
    settings(AUTH_PASSKEY_FALLBACK="false")
    elsewhere.sign_out()
    kind, message = elsewhere.login(stack.base_url, person_a.username, PASSWORD)
    assert kind == "error" and "passkey" not in message
    assert not elsewhere.driver.find_element(By.ID, "fallback").is_displayed()
    status = elsewhere.driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "window.FaceauthCapture.postJSON('/api/login/fallback/options', {})"
        ".then(function (r) { done([r.status, r.error]); }, function () { done(null); });"
    )
    assert status == [403, "fallback_not_allowed"]
    assert elsewhere.path().startswith("/login")
    assert audit_events(db, person_a.username)[-1].reason == "FALLBACK_NOT_ALLOWED"
