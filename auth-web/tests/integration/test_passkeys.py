"""The login as steps and passkeys, against fake model services and a software WebAuthn authenticator.

The authenticator (``SoftAuthenticator``) makes real WebAuthn responses with ``cryptography``: an ES256 key, the
authenticatorData (RP id hash, flags, counter, attested credential data with a COSE key), clientDataJSON, a
``none`` attestation, and ECDSA assertion signatures — so the server's checks run exactly as for a browser. Each
attack changes one thing a real authenticator or browser would have got right.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from auth_web import login_flow
from auth_web.login import GENERIC_FAILURE, USE_PASSKEY
from auth_web.models import STATUS_DISABLED, Passkey, User

from .conftest import (
    PASSWORD,
    Browser,
    FakeLiveness,
    FakeRecognition,
    audit_rows,
    create_user,
    last_reason,
    unique_username,
)
from .test_abuse import DecodingLiveness, RecordingRecognition

ORIGIN = "http://localhost"  # the Flask test client's own origin: the settings' defaults derive the RP from it
RP_ID = "localhost"
FLAG_UP, FLAG_UV, FLAG_BE, FLAG_BS, FLAG_AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One credential on a software authenticator (what a security key or platform authenticator does)."""

    sign_count: int = 0
    counting: bool = True  # False: the counter stays 0 (most synced passkeys)
    backed_up: bool = False
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def flags(self, uv: bool, attested: bool = False) -> int:
        value = FLAG_UP | (FLAG_UV if uv else 0) | (FLAG_AT if attested else 0)
        if self.backed_up:
            value |= FLAG_BE | FLAG_BS
        return value

    def auth_data(self, rp_id: str, flags: int, count: int, attested: bool = False) -> bytes:
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", count)
        if attested:
            data += bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self.cose_key()
        return data

    @staticmethod
    def client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], *, origin: str = ORIGIN, rp_id: str | None = None, uv: bool = True):  # type: ignore[no-untyped-def]
        rp = rp_id or options["rp"]["id"]
        auth_data = self.auth_data(rp, self.flags(uv, attested=True), 0, attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(self.client_data("webauthn.create", options["challenge"], origin)),
                "attestationObject": b64url(attestation),
                "transports": ["usb"],
            },
        }

    def get(  # type: ignore[no-untyped-def]
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        rp_id: str | None = None,
        uv: bool = True,
        count: int | None = None,
    ):
        if count is None:
            if self.counting:
                self.sign_count += 1
            count = self.sign_count
        auth_data = self.auth_data(rp_id or options["rpId"], self.flags(uv), count)
        client_data = self.client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
            },
        }


class FailingLiveness(FakeLiveness):
    """Says "not live" (a spoof): the face step fails whatever the capture."""

    def Check(self, request, context):  # type: ignore[no-untyped-def]
        from faceauth.liveness.v1 import liveness_pb2

        self.calls += 1
        return liveness_pb2.CheckResponse(
            live=False, reason=liveness_pb2.LIVENESS_REASON_SPOOF_SUSPECTED, live_score=0.1, model_version="fake"
        )


@pytest.fixture
def fakes(fake_grpc):  # type: ignore[no-untyped-def]
    return fake_grpc(liveness=DecodingLiveness(), recognition=RecordingRecognition())


def pair_failures(app: Flask, username: str, address: str = "127.0.0.1") -> int:
    """Failed logins counted for ``username`` from ``address`` (the throttle's pair key)."""
    from auth_web import context
    from auth_web.accounts import PAIR

    with app.app_context():
        log = context.failure_log()
        return int(log.client.zcard(log._keys(username, address)[PAIR]))


def face_step(browser: Browser, frames: list[bytes], username: str = ""):  # type: ignore[no-untyped-def]
    """The face step after a first factor: the challenge (for the pre-auth account) and the capture."""
    response = browser.post_json("/api/login/challenge", {"username": username} if username else {})
    assert response.status_code == 200, response.get_data(as_text=True)
    return browser.submit("/api/login", response.get_json()["nonce"], frames)


def session_amr(browser: Browser) -> list[str]:
    with browser.client.session_transaction() as session:
        return list(session.get("amr", []))


def register_passkey(browser: Browser, authenticator: SoftAuthenticator, name: str = "key") -> dict[str, Any]:
    """Signed in (and fresh): options → create → /api/passkeys."""
    browser.refresh_csrf("/account")
    options = browser.post_json("/api/passkeys/options", {})
    assert options.status_code == 200, options.get_data(as_text=True)
    response = browser.post_json(
        "/api/passkeys", {"credential": authenticator.create(options.get_json()["publicKey"]), "name": name}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def enrolled_user_with_passkey(app: Flask, db_engine, frames, **authenticator: Any) -> tuple[str, SoftAuthenticator]:  # type: ignore[no-untyped-def]
    """A user with face templates who signed in (password + face) and registered a passkey; signed out after."""
    username = unique_username("pk")
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    assert browser.login(username, frames).status_code == 200
    key = SoftAuthenticator(**authenticator)
    register_passkey(browser, key)
    return username, key


def passkey_first_factor(browser: Browser, username: str, key: SoftAuthenticator, **attack: Any):  # type: ignore[no-untyped-def]
    browser.refresh_csrf()
    options = browser.post_json("/api/login/passkey/options", {"username": username})
    assert options.status_code == 200, options.get_data(as_text=True)
    return browser.post_json("/api/login/passkey", {"credential": key.get(options.get_json()["publicKey"], **attack)})


# -- the password step, before the camera ----------------------------------------------------------------------


def test_a_wrong_password_fails_before_any_liveness_or_recognition_call(app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    calls = (fakes.liveness.calls, fakes.recognition.calls)
    response = browser.post_json("/api/login/password", {"username": username, "password": "wrong password!"})
    assert response.status_code == 401
    assert response.get_json() == {"ok": False, "error": "login_failed", "message": login_flow.FIRST_FACTOR_FAILED}
    assert (fakes.liveness.calls, fakes.recognition.calls) == calls
    assert last_reason(db_engine, username) == "BAD_PASSWORD"
    # No pre-auth state: the face step cannot follow without the password (the challenge is the legacy one, and
    # its capture then needs the password with it).
    response = browser.submit("/api/login", browser.challenge(username)["nonce"], frames)
    assert response.status_code == 401 and browser.signed_in_as() is None


def test_unknown_users_get_the_same_answer_and_the_same_work(app, db_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    checks: list[str | None] = []
    real = login_flow.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        checks.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(login_flow, "verify_password", counting)
    known = unique_username()
    create_user(db_engine, known, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    answers = []
    for name in (known, unique_username("ghost")):
        response = browser.post_json("/api/login/password", {"username": name, "password": "wrong password!"})
        answers.append((response.status_code, response.get_json()))
    assert answers[0] == answers[1]
    assert len(checks) == 2 and checks[1] is None  # one argon2 verification each, a dummy hash for the ghost
    assert [r.reason for r in audit_rows(db_engine, known)] == ["BAD_PASSWORD"]


def test_a_right_password_then_the_face_signs_in_with_pwd_face_mfa(app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    response = browser.post_json("/api/login/password", {"username": username, "password": PASSWORD})
    assert response.status_code == 200 and response.get_json() == {"ok": True, "next": "face"}
    assert browser.signed_in_as() is None  # the pre-auth state alone signs nobody in
    calls = fakes.recognition.calls
    response = face_step(browser, frames)
    assert response.status_code == 200, last_reason(db_engine, username)
    assert fakes.recognition.calls == calls + 1
    assert session_amr(browser) == ["pwd", "face", "mfa"]
    rows = audit_rows(db_engine, username)
    assert [(r.reason, r.details["steps"]) for r in rows] == [("OK", ["password", "face"])]


def test_the_pre_auth_state_is_bound_to_its_face_challenge_and_expires(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    assert browser.post_json("/api/login/password", {"username": username, "password": PASSWORD}).status_code == 200
    first = browser.post_json("/api/login/challenge", {}).get_json()["nonce"]
    second = browser.post_json("/api/login/challenge", {}).get_json()["nonce"]  # rebinds to the newer challenge
    # The older challenge is no longer the pre-auth state's: its capture carries no first factor.
    assert browser.submit("/api/login", first, frames).status_code == 401
    # Expired: the state is older than the challenge TTL.
    with browser.client.session_transaction() as session:
        session[login_flow.SESSION_KEY] = {**session[login_flow.SESSION_KEY], "at": time.time() - 3600}
    assert browser.submit("/api/login", second, frames).status_code == 401
    assert browser.signed_in_as() is None
    # Without any state, a challenge without a username is refused.
    assert browser.post_json("/api/login/challenge", {}).status_code == 400


def test_a_first_factor_for_one_account_does_not_carry_over_to_another(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    mine, victim = unique_username(), unique_username()
    create_user(db_engine, mine, templates=2)
    create_user(db_engine, victim, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    assert browser.post_json("/api/login/password", {"username": mine, "password": PASSWORD}).status_code == 200
    nonce = browser.challenge(victim)["nonce"]  # another name: starts over, no first factor
    assert browser.submit("/api/login", nonce, frames).status_code == 401
    assert last_reason(db_engine, victim) == "BAD_PASSWORD" and browser.signed_in_as() is None


def test_no_dead_end_a_right_password_without_face_data_says_what_to_do(app, fakes, db_engine) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=0)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    response = browser.post_json("/api/login/password", {"username": username, "password": PASSWORD})
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == "account_unusable" and "no face data" in body["message"]
    assert "recovery link" in body["message"]
    assert last_reason(db_engine, username) == "NO_TEMPLATES"
    # Not a failed attempt: many of them never lead to a delay or lock.
    with app.app_context():
        from auth_web import context

        verdict = context.failure_log().verdict(username, "127.0.0.1")
    assert not verdict.throttled and not verdict.locked
    # Before the password is right nothing is revealed: the same account with a wrong one is the generic 401.
    wrong = browser.post_json("/api/login/password", {"username": username, "password": "nope nope nope"})
    assert wrong.status_code == 401 and wrong.get_json()["message"] == login_flow.FIRST_FACTOR_FAILED


def test_a_disabled_account_is_told_after_the_right_password(app, db_engine) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    user_id = create_user(db_engine, username, templates=2)
    with Session(db_engine) as session:
        session.execute(update(User).where(User.id == user_id).values(status=STATUS_DISABLED))
        session.commit()
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    response = browser.post_json("/api/login/password", {"username": username, "password": PASSWORD})
    assert response.status_code == 403 and "disabled" in response.get_json()["message"]
    assert last_reason(db_engine, username) == "DISABLED"


def at_the_password_step(make_app, fakes, db_engine, **limits) -> tuple[Browser, str]:  # type: ignore[no-untyped-def]
    """A browser (CSRF token fetched) on an app with ``limits`` (the throttles otherwise out of the way), and a new
    user with face templates."""
    no_delays = {
        "throttle_free_attempts": 1000,
        "throttle_address_free_attempts": 1000,
        "throttle_username_free_attempts": 1000,
    }
    app = make_app(liveness_target=fakes.address, recognition_target=fakes.address, **{**no_delays, **limits})
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    return browser, username


def test_password_step_failures_count_against_the_throttle(make_app, fakes, db_engine) -> None:  # type: ignore[no-untyped-def]
    browser, username = at_the_password_step(make_app, fakes, db_engine, throttle_free_attempts=2)
    for _ in range(3):
        assert browser.post_json("/api/login/password", {"username": username, "password": "bad"}).status_code == 401
    response = browser.post_json("/api/login/password", {"username": username, "password": PASSWORD})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1


def test_a_locked_pair_is_told_its_wait_at_the_password_step(make_app, fakes, db_engine) -> None:  # type: ignore[no-untyped-def]
    browser, username = at_the_password_step(make_app, fakes, db_engine, lockout_threshold=2)
    wrong = [browser.post_json("/api/login/password", {"username": username, "password": "bad"}) for _ in range(2)]
    assert [response.status_code for response in wrong] == [401, 401]
    right = browser.post_json("/api/login/password", {"username": username, "password": PASSWORD})
    assert right.status_code == 429 and right.get_json()["error"] == "locked"
    assert "Try again in 15 minutes." in right.get_json()["message"]
    assert last_reason(db_engine, username) == "LOCKED"


# -- passkeys: registration and the attacks on it --------------------------------------------------------------


def signed_in(app: Flask, db_engine, frames, templates: int = 2) -> tuple[Browser, str]:  # type: ignore[no-untyped-def]
    username = unique_username("pk")
    create_user(db_engine, username, templates=templates)
    browser = Browser(app.test_client())
    assert browser.login(username, frames).status_code == 200
    browser.refresh_csrf("/account")  # the sign-in rotated the session, and with it the CSRF token
    return browser, username


def test_register_lists_and_removes_a_passkey(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    browser, username = signed_in(app, db_engine, frames)
    options = browser.post_json("/api/passkeys/options", {}).get_json()["publicKey"]
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["rp"]["id"] == RP_ID
    key = SoftAuthenticator()
    response = browser.post_json("/api/passkeys", {"credential": key.create(options), "name": "  Blue  key "})
    assert response.status_code == 200 and response.get_json()["name"] == "Blue key"
    page = browser.client.get("/account").get_data(as_text=True)
    assert "Blue key" in page and "passkey-list" in page
    with Session(db_engine) as session:
        stored = session.scalars(select(Passkey).where(Passkey.credential_id == key.credential_id)).one()
        assert (stored.sign_count, stored.transports, stored.backed_up) == (0, ["usb"], False)
        passkey_id = stored.id
    assert last_reason(db_engine, username, "passkey_add") == "OK"
    # The next registration excludes it.
    again = browser.post_json("/api/passkeys/options", {}).get_json()["publicKey"]
    assert [item["id"] for item in again["excludeCredentials"]] == [b64url(key.credential_id)]
    browser.refresh_csrf("/account")
    removed = browser.client.post(f"/account/passkeys/{passkey_id}/remove", data={"csrf_token": browser.csrf})
    assert removed.status_code == 302
    with Session(db_engine) as session:
        assert session.get(Passkey, passkey_id) is None
    assert last_reason(db_engine, username, "passkey_remove") == "OK"


@pytest.mark.parametrize(
    ("attack", "changes"),
    [
        ("wrong origin", {"origin": "https://evil.example"}),
        ("wrong RP id hash", {"rp_id": "evil.example"}),
        ("UV flag missing", {"uv": False}),
    ],
)
def test_a_registration_that_does_not_verify_is_refused(app, db_engine, frames, attack, changes) -> None:  # type: ignore[no-untyped-def]
    browser, username = signed_in(app, db_engine, frames)
    options = browser.post_json("/api/passkeys/options", {}).get_json()["publicKey"]
    response = browser.post_json("/api/passkeys", {"credential": SoftAuthenticator().create(options, **changes)})
    assert response.status_code == 400 and response.get_json()["error"] == "passkey_failed", attack
    assert last_reason(db_engine, username, "passkey_add") == "PASSKEY_INVALID"


def test_a_registration_challenge_is_single_use(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    browser, _ = signed_in(app, db_engine, frames)
    options = browser.post_json("/api/passkeys/options", {}).get_json()["publicKey"]
    key = SoftAuthenticator()
    credential = key.create(options)
    assert browser.post_json("/api/passkeys", {"credential": credential}).status_code == 200
    replayed = browser.post_json("/api/passkeys", {"credential": SoftAuthenticator().create(options)})
    assert replayed.status_code == 400 and replayed.get_json()["error"] == "challenge_invalid"


def test_adding_or_removing_a_passkey_needs_a_fresh_ceremony(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    browser, _ = signed_in(app, db_engine, frames)
    register_passkey(browser, SoftAuthenticator())
    with browser.client.session_transaction() as session:
        session["auth_time"] = int(time.time()) - 3600  # signed in an hour ago (a copied cookie, say)
    response = browser.post_json("/api/passkeys/options", {})
    assert response.status_code == 403 and response.get_json()["error"] == "reauth_required"
    with Session(db_engine) as session:
        passkey_id = session.scalars(select(Passkey.id).order_by(Passkey.id.desc())).first()
    browser.refresh_csrf("/account")
    removed = browser.client.post(f"/account/passkeys/{passkey_id}/remove", data={"csrf_token": browser.csrf})
    assert removed.status_code == 302 and "/reauth" in removed.headers["Location"]
    with Session(db_engine) as session:
        assert session.get(Passkey, passkey_id) is not None


def test_a_passkey_of_another_user_cannot_be_removed(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    owner, _ = signed_in(app, db_engine, frames)
    register_passkey(owner, SoftAuthenticator())
    with Session(db_engine) as session:
        passkey_id = session.scalars(select(Passkey.id).order_by(Passkey.id.desc())).first()
    other, _ = signed_in(app, db_engine, frames)
    other.refresh_csrf("/account")
    other.client.post(f"/account/passkeys/{passkey_id}/remove", data={"csrf_token": other.csrf})
    with Session(db_engine) as session:
        assert session.get(Passkey, passkey_id) is not None


# -- passkey+face ------------------------------------------------------------------------------------------------


@pytest.fixture
def passkey_app(make_app, fakes) -> Flask:  # type: ignore[no-untyped-def]
    return make_app(liveness_target=fakes.address, recognition_target=fakes.address, factors="passkey+face")


def test_passkey_then_face_signs_in_with_hwk_face_mfa(app, passkey_app, fakes, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username, key = enrolled_user_with_passkey(app, db_engine, frames)
    browser = Browser(passkey_app.test_client())
    calls = fakes.liveness.calls
    response = passkey_first_factor(browser, username, key)
    assert response.status_code == 200 and response.get_json() == {"ok": True, "next": "face"}
    assert fakes.liveness.calls == calls and browser.signed_in_as() is None
    assert face_step(browser, frames).status_code == 200, last_reason(db_engine, username)
    assert session_amr(browser) == ["hwk", "face", "mfa"]
    with Session(db_engine) as session:
        stored = session.scalars(select(Passkey).where(Passkey.credential_id == key.credential_id)).one()
        assert stored.sign_count == 1 and stored.last_used_at is not None


def test_a_synced_passkey_is_swk(app, passkey_app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username, key = enrolled_user_with_passkey(app, db_engine, frames, backed_up=True, counting=False)
    browser = Browser(passkey_app.test_client())
    assert passkey_first_factor(browser, username, key).status_code == 200
    assert face_step(browser, frames).status_code == 200
    assert session_amr(browser) == ["swk", "face", "mfa"]
    # A counter that stays 0 on both sides is accepted again (authenticators that do not count).
    again = Browser(passkey_app.test_client())
    assert passkey_first_factor(again, username, key).status_code == 200


def test_passkey_face_without_the_passkey_gives_no_face_challenge(passkey_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    browser = Browser(passkey_app.test_client())
    browser.refresh_csrf()
    response = browser.post_json("/api/login/challenge", {"username": username})
    assert response.status_code == 400 and response.get_json()["error"] == "challenge_invalid"
    password = browser.post_json("/api/login/password", {"username": username, "password": PASSWORD})
    assert password.status_code == 400  # no password step in this flow


@pytest.mark.parametrize(
    ("attack", "changes", "reason"),
    [
        ("wrong origin", {"origin": "https://evil.example"}, "PASSKEY_INVALID"),
        ("wrong RP id hash", {"rp_id": "evil.example"}, "PASSKEY_INVALID"),
        ("UV flag missing", {"uv": False}, "PASSKEY_INVALID"),
        ("sign-count regression", {"count": 0}, "PASSKEY_SIGN_COUNT"),
    ],
)
def test_an_assertion_that_does_not_verify_is_refused_and_counted(  # type: ignore[no-untyped-def]
    app, passkey_app, fakes, db_engine, frames, attack, changes, reason
) -> None:
    username, key = enrolled_user_with_passkey(app, db_engine, frames)
    browser = Browser(passkey_app.test_client())
    assert passkey_first_factor(browser, username, key).status_code == 200  # the counter is now 1
    attacker = Browser(passkey_app.test_client())
    calls = fakes.liveness.calls
    counted = pair_failures(passkey_app, username)
    response = passkey_first_factor(attacker, username, key, **changes)
    assert response.status_code == 401 and response.get_json()["error"] == "login_failed", attack
    assert last_reason(db_engine, username) == reason
    assert fakes.liveness.calls == calls
    assert pair_failures(passkey_app, username) == counted + 1  # counted like a failed login
    assert attacker.post_json("/api/login/challenge", {}).status_code == 400  # no face step after it
    assert audit_rows(db_engine, username)[-1].details["step"] == "passkey"


def test_a_replayed_assertion_is_refused(app, passkey_app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username, key = enrolled_user_with_passkey(app, db_engine, frames)
    browser = Browser(passkey_app.test_client())
    browser.refresh_csrf()
    options = browser.post_json("/api/login/passkey/options", {"username": username}).get_json()["publicKey"]
    assertion = key.get(options)
    assert browser.post_json("/api/login/passkey", {"credential": assertion}).status_code == 200
    replay = browser.post_json("/api/login/passkey", {"credential": assertion})
    assert replay.status_code == 400 and replay.get_json()["error"] == "challenge_invalid"
    # An old challenge answered anew (with a fresh counter) after newer options: refused too.
    browser.post_json("/api/login/passkey/options", {"username": username})
    stale = browser.post_json("/api/login/passkey", {"credential": key.get(options)})
    assert stale.status_code == 401 and last_reason(db_engine, username) == "PASSKEY_INVALID"


def test_another_users_credential_is_refused(app, passkey_app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    victim, _ = enrolled_user_with_passkey(app, db_engine, frames)
    attacker_name, attacker_key = enrolled_user_with_passkey(app, db_engine, frames)
    browser = Browser(passkey_app.test_client())
    response = passkey_first_factor(browser, victim, attacker_key)  # the attacker's own, valid passkey
    assert response.status_code == 401
    assert last_reason(db_engine, victim) == "PASSKEY_OTHER_USER"
    assert browser.post_json("/api/login/challenge", {}).status_code == 400
    assert attacker_name != victim


def test_options_for_an_unknown_user_look_like_a_user_without_passkeys(passkey_app, db_engine) -> None:  # type: ignore[no-untyped-def]
    known = unique_username()
    create_user(db_engine, known, templates=2)
    browser = Browser(passkey_app.test_client())
    browser.refresh_csrf()
    shapes = []
    for name in (known, unique_username("ghost")):
        body = browser.post_json("/api/login/passkey/options", {"username": name}).get_json()
        options = body["publicKey"]
        assert len(unb64url(options.pop("challenge"))) == 64
        shapes.append((set(body), options))
    assert shapes[0] == shapes[1]
    assert shapes[0][1]["allowCredentials"] == [] and shapes[0][1]["userVerification"] == "required"


# -- the fallback: face fails → "use your passkey instead" -------------------------------------------------------


@pytest.fixture
def failing_face(fake_grpc):  # type: ignore[no-untyped-def]
    return fake_grpc(liveness=FailingLiveness(), recognition=FakeRecognition())


def fallback_flow(browser: Browser, username: str, frames: list[bytes]):  # type: ignore[no-untyped-def]
    browser.refresh_csrf()
    assert browser.post_json("/api/login/password", {"username": username, "password": PASSWORD}).status_code == 200
    return face_step(browser, frames)


def test_face_fails_then_the_passkey_signs_in_as_a_fallback(app, make_app, failing_face, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username, key = enrolled_user_with_passkey(app, db_engine, frames)
    failing = make_app(liveness_target=failing_face.address, recognition_target=failing_face.address)
    browser = Browser(failing.test_client())
    face = fallback_flow(browser, username, frames)
    assert face.status_code == 401 and face.get_json()["fallback"] == "passkey"
    # The password was right, so the answer says what went wrong, and offers the passkey.
    advice = login_flow.FACE_ADVICE["LIVENESS_SPOOF_SUSPECTED"]
    assert face.get_json()["message"] == f"{advice} {USE_PASSKEY}"
    options = browser.post_json("/api/login/fallback/options", {})
    assert options.status_code == 200
    listed = [item["id"] for item in options.get_json()["publicKey"]["allowCredentials"]]
    assert listed == [b64url(key.credential_id)]
    response = browser.post_json("/api/login/fallback", {"credential": key.get(options.get_json()["publicKey"])})
    assert response.status_code == 200, last_reason(db_engine, username)
    assert browser.signed_in_as() == username
    assert session_amr(browser) == ["pwd", "hwk", "mfa"]  # no "face"
    reasons_seen = [r.reason for r in audit_rows(db_engine, username)][-3:]
    assert reasons_seen[-2:] == ["LIVENESS_SPOOF_SUSPECTED", "PASSKEY_FALLBACK"]


def test_the_fallback_is_refused_when_policy_does_not_allow_it(app, make_app, failing_face, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username, key = enrolled_user_with_passkey(app, db_engine, frames)
    strict = make_app(
        liveness_target=failing_face.address, recognition_target=failing_face.address, passkey_fallback=False
    )
    browser = Browser(strict.test_client())
    face = fallback_flow(browser, username, frames)
    assert face.status_code == 401 and "fallback" not in face.get_json()
    assert browser.post_json("/api/login/fallback/options", {}).status_code == 403
    forged = key.get({"challenge": b64url(secrets.token_bytes(32)), "rpId": RP_ID})
    response = browser.post_json("/api/login/fallback", {"credential": forged})
    assert response.status_code == 403 and response.get_json()["error"] == "fallback_not_allowed"
    assert browser.signed_in_as() is None


def test_the_fallback_needs_a_failed_face_after_the_first_factor(app, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username, _key = enrolled_user_with_passkey(app, db_engine, frames)
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    # No first factor at all.
    assert browser.post_json("/api/login/fallback/options", {}).status_code == 403
    # The password alone (face not tried yet) is not enough either.
    assert browser.post_json("/api/login/password", {"username": username, "password": PASSWORD}).status_code == 200
    assert browser.post_json("/api/login/fallback/options", {}).status_code == 403
    assert last_reason(db_engine, username) == "FALLBACK_NOT_ALLOWED"
    assert browser.signed_in_as() is None


def test_a_failed_face_counts_as_a_failure_even_with_the_fallback(
    app, make_app, failing_face, db_engine, frames
) -> None:  # type: ignore[no-untyped-def]
    username, _ = enrolled_user_with_passkey(app, db_engine, frames)
    failing = make_app(liveness_target=failing_face.address, recognition_target=failing_face.address)
    browser = Browser(failing.test_client())
    assert pair_failures(failing, username) == 0  # the earlier sign-in settled its count
    face = fallback_flow(browser, username, frames)
    assert face.status_code == 401 and face.get_json()["fallback"] == "passkey"
    assert pair_failures(failing, username) == 1


def test_no_fallback_offer_for_a_user_without_a_passkey(make_app, failing_face, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    username = unique_username()
    create_user(db_engine, username, templates=2)
    failing = make_app(liveness_target=failing_face.address, recognition_target=failing_face.address)
    browser = Browser(failing.test_client())
    face = fallback_flow(browser, username, frames)
    assert face.status_code == 401 and "fallback" not in face.get_json()
    assert face.get_json()["message"] == login_flow.FACE_ADVICE["LIVENESS_SPOOF_SUSPECTED"]
    assert browser.post_json("/api/login/fallback/options", {}).status_code == 403


def test_before_the_first_factor_the_face_failure_stays_generic(make_app, failing_face, db_engine, frames) -> None:  # type: ignore[no-untyped-def]
    """The password sent with the capture (no first factor before it): one generic answer whatever failed."""
    username = unique_username()
    create_user(db_engine, username, templates=2)
    failing = make_app(liveness_target=failing_face.address, recognition_target=failing_face.address)
    response = Browser(failing.test_client()).login_with_password_in_capture(username, frames)
    assert response.status_code == 401 and response.get_json()["message"] == GENERIC_FAILURE
    assert last_reason(db_engine, username) == "LIVENESS_SPOOF_SUSPECTED"


JUNK_CREDENTIALS = [
    None,
    "not json",
    [],
    {},
    {"id": "AA", "rawId": "AA", "type": "public-key", "response": "x"},
    {"id": "AA", "rawId": "!!", "type": "public-key", "response": {"clientDataJSON": 1, "signature": []}},
    {"id": "AA", "rawId": "AA", "type": "public-key", "response": {"clientDataJSON": "AA", "attestationObject": "AA"}},
]


@pytest.mark.parametrize("credential", JUNK_CREDENTIALS)
def test_junk_credentials_are_refused_never_a_server_error(app, passkey_app, db_engine, frames, credential) -> None:  # type: ignore[no-untyped-def]
    browser, username = signed_in(app, db_engine, frames)
    browser.post_json("/api/passkeys/options", {})
    registered = browser.post_json("/api/passkeys", {"credential": credential})
    assert registered.status_code == 400 and registered.get_json()["ok"] is False
    signing_in = Browser(passkey_app.test_client())
    signing_in.refresh_csrf()
    signing_in.post_json("/api/login/passkey/options", {"username": username})
    asserted = signing_in.post_json("/api/login/passkey", {"credential": credential})
    assert asserted.status_code == 401 and asserted.get_json()["error"] == "login_failed"
    assert last_reason(db_engine, username) == "PASSKEY_INVALID"
