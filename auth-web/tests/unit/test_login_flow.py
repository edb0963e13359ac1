"""The login flow's decisions (login_flow.py) and the passkey rules (passkeys.py), without any I/O."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from auth_web import login_flow, passkeys
from auth_web.login_flow import FLOWS, PreAuth, fallback_allowed, is_expired, next_step, passkey_amr, signed_in_amr
from auth_web.models import User


@pytest.mark.parametrize(
    ("flow", "passed", "expected"),
    [
        (FLOWS["password+face"], (), "password"),
        (FLOWS["password+face"], ("password",), "face"),
        (FLOWS["password+face"], ("password", "face"), None),
        (FLOWS["password+face"], ("passkey",), None),  # a step of another flow counts for nothing
        (FLOWS["password+face"], ("face",), None),  # out of order
        (FLOWS["passkey+face"], ("passkey",), "face"),
        (FLOWS["passkey+face"], ("password",), None),
        (FLOWS["face"], (), "face"),
        (FLOWS["face"], ("password",), None),
    ],
)
def test_next_step_follows_the_flow_in_order(flow: tuple[str, ...], passed: tuple[str, ...], expected: str) -> None:
    assert next_step(flow, passed) == expected


def test_every_flow_ends_with_the_face_and_the_policies_are_the_settings_choices() -> None:
    from auth_web.config import FACTORS

    assert set(FLOWS) == set(FACTORS)
    assert all(flow[-1] == "face" for flow in FLOWS.values())


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ((("pwd",), ("face",)), ["pwd", "face", "mfa"]),
        ((("hwk",), ("face",)), ["hwk", "face", "mfa"]),
        ((("swk",), ("face",)), ["swk", "face", "mfa"]),
        (((), ("face",)), ["face"]),
        ((("pwd",), ("hwk",)), ["pwd", "hwk", "mfa"]),  # the fallback after a password: no "face"
        ((("hwk",), ("hwk",)), ["hwk"]),  # passkey+face's fallback: the same kind of factor twice is one
        ((("pwd", "mfa"), ("face",)), ["pwd", "face", "mfa"]),
    ],
)
def test_signed_in_amr(groups: tuple[tuple[str, ...], ...], expected: list[str]) -> None:
    assert signed_in_amr(*groups) == expected


def test_a_backed_up_passkey_is_a_software_key() -> None:
    assert passkey_amr(True) == ("swk",) and passkey_amr(False) == ("hwk",)


def preauth(**changes: Any) -> PreAuth:
    fields: dict[str, Any] = {
        "user_id": 7,
        "claimed": "alice",
        "passed": ("password",),
        "amr": ("pwd",),
        "at": 1000.0,
        "nonce": "",
        "face_failed": True,
    }
    fields.update(changes)
    return PreAuth(**fields)


@pytest.mark.parametrize(
    ("policy", "state", "has_passkey", "allowed"),
    [
        (True, preauth(), True, True),
        (False, preauth(), True, False),  # the operator does not allow it
        (True, preauth(face_failed=False), True, False),  # the face was not tried (or has not failed)
        (True, preauth(), False, False),  # nothing to fall back to
        (True, None, True, False),  # no first factor in this session
        (True, preauth(passed=()), True, False),
    ],
)
def test_fallback_allowed(policy: bool, state: PreAuth | None, has_passkey: bool, allowed: bool) -> None:
    assert fallback_allowed(policy, state, has_passkey) is allowed


def test_the_pre_auth_state_round_trips_and_rejects_garbage() -> None:
    state = preauth(nonce="abc")
    assert PreAuth.from_session(state.to_session()) == state
    for garbage in (None, "x", [], {}, {"user_id": "seven", "claimed": "a", "passed": [], "amr": [], "at": 1}):
        assert PreAuth.from_session(garbage) is None


def test_the_pre_auth_state_expires() -> None:
    state = preauth(at=1000.0)
    assert not is_expired(state, 1000.0 + 59, 60)
    assert is_expired(state, 1000.0 + 61, 60)
    assert is_expired(state, 1000.0 - 3600, 60)  # from the future: not ours


def test_the_dead_end_message_says_what_to_do() -> None:
    assert "recovery link" in login_flow.dead_end_message("NO_TEMPLATES", self_service=False)
    assert "Forgot password or face?" in login_flow.dead_end_message("NO_TEMPLATES", self_service=True)
    assert "disabled" in login_flow.dead_end_message("DISABLED", self_service=False)


@pytest.mark.parametrize(
    ("stored", "presented", "ok"),
    [
        (0, 0, True),  # an authenticator that does not count
        (0, 1, True),
        (5, 6, True),
        (5, 5, False),  # did not move: a clone
        (5, 4, False),  # went back
        (5, 0, False),  # a counter that reset to 0 after counting
        (0, 2**32 - 1, True),
    ],
)
def test_sign_count_rules(stored: int, presented: int, ok: bool) -> None:
    assert passkeys.sign_count_ok(stored, presented) is ok


def test_assertion_options_for_an_unknown_user_look_like_a_user_without_passkeys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from auth_web.config import Settings

    remembered: list[dict[str, Any]] = []
    monkeypatch.setattr(passkeys, "_remember", lambda kind, challenge, **fields: remembered.append(fields))
    app = Flask(__name__)
    monkeypatch.setattr(passkeys.context, "settings", lambda: Settings())
    with app.test_request_context("/api/login/passkey/options", base_url="https://auth.example.com"):
        known = passkeys.authentication_options(User(id=3, username="alice", passkeys=[]), "alice", "first_factor")
        unknown = passkeys.authentication_options(None, "ghost", "first_factor")
    assert known.public_key.pop("challenge") != unknown.public_key.pop("challenge")
    assert known.public_key == unknown.public_key
    assert known.public_key["rpId"] == "auth.example.com" and known.public_key["allowCredentials"] == []
    assert len(remembered) == 2  # both stored a challenge the same way


def test_the_relying_party_comes_from_the_settings_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from auth_web.config import Settings

    configured = Settings(webauthn_origin="https://login.example.com", webauthn_rp_id="example.com")
    monkeypatch.setattr(passkeys.context, "settings", lambda: configured)
    with Flask(__name__).test_request_context("/", base_url="http://evil.example"):
        rp = passkeys.relying_party()
    assert (rp.rp_id, rp.origin) == ("example.com", "https://login.example.com")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("  Blue   key ", "Blue key"), ("", "Passkey"), (None, "Passkey"), ("x" * 100, "x" * 64), ("a\u0000b", "ab")],
)
def test_passkey_names_are_cleaned(raw: object, expected: str) -> None:
    assert passkeys.clean_name(raw) == expected


def test_every_face_reason_of_the_services_has_plain_words() -> None:
    """One vocabulary: the advice covers every refusal reason the proto can give (decision.py's codes)."""
    from auth_web.decision import liveness_reason_code, verify_reason_code
    from faceauth.liveness.v1 import liveness_pb2
    from faceauth.recognition.v1 import recognition_pb2

    skipped = {"LIVENESS_UNSPECIFIED", "LIVENESS_LIVE", "VERIFY_UNSPECIFIED", "VERIFY_MATCH"}
    codes = {liveness_reason_code(v) for v in liveness_pb2.LivenessReason.values()}
    codes |= {verify_reason_code(v) for v in recognition_pb2.VerifyReason.values()}
    assert codes - skipped <= set(login_flow.FACE_ADVICE)
    assert login_flow.face_advice("SOMETHING_NEW", "generic") == "generic"
