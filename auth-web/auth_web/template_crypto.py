"""Face templates encrypted at rest: AES-256-GCM with a key ring (no Flask, no database).

A sealed template is ``nonce (12 random bytes) || ciphertext || GCM tag (16 bytes)``; the row also stores the id
of the key that sealed it. The associated data binds the ciphertext to its row: the format, the user id and the
model version. A ciphertext copied into another user's row (or relabelled with another model version) fails to
decrypt instead of letting one person's face open another account.

Keys are 32 random bytes written in base64 (URL-safe or standard, padding optional), e.g.
``python -m auth_web generate-template-key`` or ``openssl rand -base64 32``. A key's id is derived from the key
(the first 8 bytes of a domain-separated SHA-256, in hex), so a key ring is just a list of keys: the current one
seals, every one of them opens what it sealed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Part of the associated data: a later format gets a new label, so the two can never be confused.
FORMAT = "faceauth-template/1"

KEY_ENV = "FACEAUTH_TEMPLATE_KEY"
OLD_KEYS_ENV = "FACEAUTH_TEMPLATE_OLD_KEYS"

# Why a fixed development key exists at all: `python -m auth_web serve` and the test suite work without any
# setup. It is derived from a public label, so it protects nothing; production refuses it (config.py), and the
# local run (`make run`) generates a random key under var/ instead.
_DEVELOPMENT_KEY = hashlib.sha256(b"faceauth development template key - public, never for production").digest()


class TemplateKeyError(ValueError):
    """A key (or key list) in the environment is malformed; the message names the variable, never the key."""


class TemplateDecryptionError(Exception):
    """A sealed template cannot be opened. ``reason`` is a code for the audit log and the operator:

    - ``UNKNOWN_KEY``: no key of the ring has this key id (a key was dropped before re-encryption finished, or the
      wrong FACEAUTH_TEMPLATE_KEY is set);
    - ``AUTHENTICATION_FAILED``: the key id is known but the ciphertext does not authenticate: the row was
      tampered with, or copied from another user's row / model version;
    - ``MALFORMED``: too short to be a sealed template (e.g. a plaintext row left over).
    """

    def __init__(self, reason: str, key_id: str | None) -> None:
        super().__init__(f"face template cannot be decrypted ({reason}, key id {key_id})")
        self.reason = reason
        self.key_id = key_id


def key_id_for(key: bytes) -> str:
    """16 hex characters naming a key without revealing it (a hash of a 256-bit random key)."""
    return hashlib.sha256(b"faceauth template key id\x00" + key).hexdigest()[:16]


def parse_key(text: str, variable: str = KEY_ENV) -> bytes:
    """32 bytes from their base64 text (URL-safe or standard alphabet, padding optional)."""
    cleaned = text.strip()
    try:
        standard = cleaned.replace("-", "+").replace("_", "/")
        key = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise TemplateKeyError(
            f"{variable} is not base64 (make one with `python -m auth_web generate-template-key`)"
        ) from None
    if len(key) != KEY_BYTES:
        raise TemplateKeyError(
            f"{variable} must be {KEY_BYTES} bytes in base64 (44 characters), got {len(key)} bytes "
            "(make one with `python -m auth_web generate-template-key`)"
        )
    return key


def generate_key() -> str:
    """A new random key as URL-safe base64 (what FACEAUTH_TEMPLATE_KEY expects)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def associated_data(user_id: int, model_version: str) -> bytes:
    # JSON of a list: unambiguous whatever characters the model version contains.
    return json.dumps([FORMAT, int(user_id), str(model_version)], separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class TemplateKey:
    key: bytes = field(repr=False)
    key_id: str = ""

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise TemplateKeyError(f"a template key must be {KEY_BYTES} bytes")
        if not self.key_id:
            object.__setattr__(self, "key_id", key_id_for(self.key))


@dataclass(frozen=True)
class SealedTemplate:
    key_id: str
    ciphertext: bytes = field(repr=False)


class TemplateCipher:
    """Seals with the current key; opens with whichever key of the ring sealed the row."""

    def __init__(self, current: TemplateKey, old: Iterable[TemplateKey] = ()) -> None:
        self.current = current
        self._keys: dict[str, AESGCM] = {}
        for key in (current, *old):
            self._keys.setdefault(key.key_id, AESGCM(key.key))

    @property
    def current_key_id(self) -> str:
        return self.current.key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The current key's id first, then the old ones."""
        return tuple(self._keys)

    @property
    def is_development_key(self) -> bool:
        return self.current.key == _DEVELOPMENT_KEY

    def seal(self, plaintext: bytes, *, user_id: int, model_version: str) -> SealedTemplate:
        nonce = os.urandom(NONCE_BYTES)
        aead = self._keys[self.current.key_id]
        ciphertext = aead.encrypt(nonce, plaintext, associated_data(user_id, model_version))
        return SealedTemplate(self.current.key_id, nonce + ciphertext)

    def open(self, ciphertext: bytes, *, key_id: str | None, user_id: int, model_version: str) -> bytes:
        aead = self._keys.get(key_id) if key_id else None
        if aead is None:
            raise TemplateDecryptionError("UNKNOWN_KEY", key_id)
        if len(ciphertext) < NONCE_BYTES + TAG_BYTES:
            raise TemplateDecryptionError("MALFORMED", key_id)
        try:
            return aead.decrypt(
                ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:], associated_data(user_id, model_version)
            )
        except InvalidTag:
            raise TemplateDecryptionError("AUTHENTICATION_FAILED", key_id) from None

    def __repr__(self) -> str:
        return f"TemplateCipher(current={self.current_key_id!r}, keys={list(self.key_ids)!r})"


def development_cipher() -> TemplateCipher:
    return TemplateCipher(TemplateKey(_DEVELOPMENT_KEY))


def cipher_from_env(env: Mapping[str, str] | None = None, *, allow_development_key: bool = True) -> TemplateCipher:
    """The key ring from FACEAUTH_TEMPLATE_KEY (current) and FACEAUTH_TEMPLATE_OLD_KEYS (comma-separated, for
    decryption only). Without FACEAUTH_TEMPLATE_KEY: the public development key, or TemplateKeyError when
    ``allow_development_key`` is false (production)."""
    env = os.environ if env is None else env
    current_text = env.get(KEY_ENV, "").strip()
    old = [TemplateKey(parse_key(part, OLD_KEYS_ENV)) for part in env.get(OLD_KEYS_ENV, "").split(",") if part.strip()]
    if not current_text:
        if not allow_development_key:
            raise TemplateKeyError(
                f"{KEY_ENV} must be set in production (make one with `python -m auth_web generate-template-key`)"
            )
        return TemplateCipher(TemplateKey(_DEVELOPMENT_KEY), old)
    current = TemplateKey(parse_key(current_text, KEY_ENV))
    if current.key == _DEVELOPMENT_KEY and not allow_development_key:
        raise TemplateKeyError(f"{KEY_ENV} must not be the public development key in production")
    return TemplateCipher(current, old)
