"""Templates at rest: AES-256-GCM sealing, the key ring, key parsing, and the production rules for the key."""

from __future__ import annotations

import base64
import os
import timeit

import numpy as np
import pytest

from auth_web.config import Settings
from auth_web.models import FaceTemplate, pack_embedding
from auth_web.template_crypto import (
    KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    TemplateCipher,
    TemplateDecryptionError,
    TemplateKey,
    TemplateKeyError,
    cipher_from_env,
    development_cipher,
    generate_key,
    key_id_for,
    parse_key,
)
from faceauth_common.settings import SettingsError

STRONG_SECRET = "x" * 40
VECTOR = (np.random.default_rng(7).normal(size=128) * 0.1).astype(np.float32)


def cipher(*keys: bytes) -> TemplateCipher:
    current, *old = (TemplateKey(k) for k in keys)
    return TemplateCipher(current, old)


KEY_A, KEY_B = os.urandom(KEY_BYTES), os.urandom(KEY_BYTES)


def test_seal_and_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    ring = cipher(KEY_A)
    plaintext = pack_embedding(VECTOR)
    first = ring.seal(plaintext, user_id=1, model_version="dlib-v1")
    second = ring.seal(plaintext, user_id=1, model_version="dlib-v1")
    assert len(first.ciphertext) == NONCE_BYTES + len(plaintext) + TAG_BYTES
    assert first.ciphertext[:NONCE_BYTES] != second.ciphertext[:NONCE_BYTES]
    assert first.ciphertext != second.ciphertext
    assert plaintext not in first.ciphertext
    assert first.key_id == key_id_for(KEY_A) == ring.current_key_id
    assert ring.open(first.ciphertext, key_id=first.key_id, user_id=1, model_version="dlib-v1") == plaintext


@pytest.mark.parametrize(
    ("user_id", "model_version"), [(2, "dlib-v1"), (1, "dlib-v2"), (11, "dlib-v1")], ids=["user", "model", "digits"]
)
def test_a_ciphertext_only_opens_in_its_own_row(user_id: int, model_version: str) -> None:
    ring = cipher(KEY_A)
    sealed = ring.seal(pack_embedding(VECTOR), user_id=1, model_version="dlib-v1")
    with pytest.raises(TemplateDecryptionError) as caught:
        ring.open(sealed.ciphertext, key_id=sealed.key_id, user_id=user_id, model_version=model_version)
    assert caught.value.reason == "AUTHENTICATION_FAILED"


def test_wrong_unknown_tampered_or_plaintext_rows_fail_with_a_reason() -> None:
    sealed = cipher(KEY_A).seal(pack_embedding(VECTOR), user_id=1, model_version="v")
    # Another key under the same id (a wrong key given with an explicit id would look like this).
    impostor = TemplateCipher(TemplateKey(KEY_B, key_id=sealed.key_id))
    with pytest.raises(TemplateDecryptionError, match="AUTHENTICATION_FAILED"):
        impostor.open(sealed.ciphertext, key_id=sealed.key_id, user_id=1, model_version="v")
    with pytest.raises(TemplateDecryptionError, match="UNKNOWN_KEY") as caught:
        cipher(KEY_B).open(sealed.ciphertext, key_id=sealed.key_id, user_id=1, model_version="v")
    assert caught.value.key_id == sealed.key_id
    flipped = bytearray(sealed.ciphertext)
    flipped[NONCE_BYTES + 3] ^= 1
    with pytest.raises(TemplateDecryptionError, match="AUTHENTICATION_FAILED"):
        cipher(KEY_A).open(bytes(flipped), key_id=sealed.key_id, user_id=1, model_version="v")
    with pytest.raises(TemplateDecryptionError, match="UNKNOWN_KEY"):
        cipher(KEY_A).open(pack_embedding(VECTOR), key_id=None, user_id=1, model_version="v")
    with pytest.raises(TemplateDecryptionError, match="MALFORMED"):
        cipher(KEY_A).open(b"short", key_id=sealed.key_id, user_id=1, model_version="v")


def test_the_ring_opens_old_rows_and_seals_with_the_current_key() -> None:
    old_row = FaceTemplate.seal(VECTOR, user_id=5, model_version="v", cipher=cipher(KEY_A), quality=0.9)
    rotated = cipher(KEY_B, KEY_A)
    assert rotated.key_ids == (key_id_for(KEY_B), key_id_for(KEY_A))
    assert old_row.vector(rotated) == pytest.approx(VECTOR.tolist())
    assert old_row.reseal(rotated) is True and old_row.key_id == key_id_for(KEY_B)
    assert old_row.reseal(rotated) is False  # idempotent
    # Once every row is re-sealed, the old key can go.
    assert old_row.vector(cipher(KEY_B)) == pytest.approx(VECTOR.tolist())
    with pytest.raises(TemplateDecryptionError, match="UNKNOWN_KEY"):
        old_row.vector(cipher(KEY_A))


def test_face_template_seal_validates_the_embedding() -> None:
    for bad in ([0.1] * 127, [float("nan")] * 128, [float("inf")] + [0.0] * 127):
        with pytest.raises(ValueError, match="128 finite numbers"):
            FaceTemplate.seal(bad, user_id=1, model_version="v", cipher=cipher(KEY_A), quality=0.5)


def test_keys_parse_from_urlsafe_or_standard_base64_with_or_without_padding() -> None:
    key = bytes(range(251, 256)) + os.urandom(KEY_BYTES - 5)  # bytes that need + / or - _
    for text in (
        base64.urlsafe_b64encode(key).decode(),
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        f"  {base64.b64encode(key).decode()}\n",
    ):
        assert parse_key(text) == key
    generated = generate_key()
    assert len(parse_key(generated)) == KEY_BYTES and generated != generate_key()


@pytest.mark.parametrize(
    "text", ["not base64 at all!", base64.b64encode(b"x" * 16).decode(), base64.b64encode(b"x" * 33).decode(), ""]
)
def test_bad_keys_are_refused_with_the_variable_name_and_without_the_key(text: str) -> None:
    with pytest.raises(TemplateKeyError, match="FACEAUTH_TEMPLATE_KEY") as caught:
        parse_key(text)
    if text:
        assert text not in str(caught.value)


def test_key_ids_name_keys_without_revealing_them() -> None:
    assert key_id_for(KEY_A) != key_id_for(KEY_B)
    assert len(key_id_for(KEY_A)) == 16 and key_id_for(KEY_A) == key_id_for(bytes(KEY_A))
    assert KEY_A.hex()[:16] != key_id_for(KEY_A)
    assert base64.b64encode(KEY_A).decode() not in repr(cipher(KEY_A)) + repr(TemplateKey(KEY_A))


def test_the_environment_gives_the_current_key_and_old_keys() -> None:
    current, old_one, old_two = generate_key(), generate_key(), generate_key()
    ring = cipher_from_env({"FACEAUTH_TEMPLATE_KEY": current, "FACEAUTH_TEMPLATE_OLD_KEYS": f"{old_one}, {old_two},"})
    assert ring.key_ids == tuple(key_id_for(parse_key(k)) for k in (current, old_one, old_two))
    assert not ring.is_development_key
    with pytest.raises(TemplateKeyError, match="FACEAUTH_TEMPLATE_OLD_KEYS"):
        cipher_from_env({"FACEAUTH_TEMPLATE_KEY": current, "FACEAUTH_TEMPLATE_OLD_KEYS": "bad!"})


def test_development_uses_the_public_development_key_when_none_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.template_cipher.is_development_key
    assert (
        settings.template_cipher.current_key_id
        == development_cipher().current_key_id
        == Settings().template_cipher.current_key_id
    )


@pytest.mark.parametrize("key", [None, "", "not-a-key", "development"])
def test_production_refuses_a_missing_malformed_or_development_template_key(key: str | None) -> None:
    env = {"FACEAUTH_ENV": "production", "FACEAUTH_SECRET_KEY": STRONG_SECRET}
    if key == "development":
        key = base64.b64encode(development_cipher().current.key).decode()
    if key is not None:
        env["FACEAUTH_TEMPLATE_KEY"] = key
    with pytest.raises(SettingsError, match="FACEAUTH_TEMPLATE_KEY"):
        Settings.from_env(env)


def test_production_accepts_a_random_template_key() -> None:
    key = generate_key()
    settings = Settings.from_env(
        {"FACEAUTH_ENV": "production", "FACEAUTH_SECRET_KEY": STRONG_SECRET, "FACEAUTH_TEMPLATE_KEY": key}
    )
    assert settings.template_cipher.current_key_id == key_id_for(parse_key(key))
    assert key not in repr(settings)


def test_opening_a_users_templates_costs_microseconds() -> None:
    """What a login adds: opening AUTH_ENROLL_MAX_TEMPLATES (5) sealed templates (README, measured numbers)."""
    ring = cipher(KEY_B, KEY_A)
    rows = [FaceTemplate.seal(VECTOR, user_id=9, model_version="v", cipher=ring, quality=0.9) for _ in range(5)]
    per_login = min(timeit.repeat(lambda: [row.vector(ring) for row in rows], number=200, repeat=3)) / 200
    assert per_login < 0.005, f"{per_login * 1e6:.0f} µs to open 5 templates"
