"""The ID-token signing keys: generated on first use, stored sealed in Postgres, rotated by a command.

The private JWK is sealed with the template cipher (FACEAUTH_TEMPLATE_KEY, AES-256-GCM; template_crypto.py), its
associated data naming the key's ``kid``, so the table holds no private key in plaintext and a sealed key cannot be
swapped for another row's. One key is active (it signs); rotated-out keys are *retired*: still published in JWKS,
so that ID tokens they signed keep verifying, until ``retired_at + AUTH_OIDC_RETIRED_KEY_SECONDS``, after which
rotation deletes them.
"""

from __future__ import annotations

import datetime as dt
import json

from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auth_web.models import utcnow
from auth_web.oidc_models import SigningKey
from auth_web.template_crypto import TemplateCipher

#: The associated data's label (template_crypto binds a "user id" and a "model version"; a key is neither, so the
#: user id is 0 and the label carries the kid).
_SEAL_LABEL = "oidc-signing-key/"
_SEAL_USER_ID = 0

Key = ECKey | RSAKey


def _generate(alg: str) -> Key:
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True, auto_kid=True)
    return ECKey.generate_key("P-256", private=True, auto_kid=True)


def _seal(cipher: TemplateCipher, kid: str, private_jwk: dict) -> tuple[bytes, str]:
    sealed = cipher.seal(
        json.dumps(private_jwk).encode("utf-8"), user_id=_SEAL_USER_ID, model_version=_SEAL_LABEL + kid
    )
    return sealed.ciphertext, sealed.key_id


def create_key(session: Session, cipher: TemplateCipher, alg: str) -> SigningKey:
    """A new active key (not committed)."""
    key = _generate(alg)
    kid = key.kid or key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    ciphertext, key_id = _seal(cipher, kid, key.as_dict(private=True))
    row = SigningKey(kid=kid, alg=alg, public_jwk=public, private_sealed=ciphertext, key_id=key_id)
    session.add(row)
    return row


def active_key(session: Session) -> SigningKey | None:
    return session.scalar(
        select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.id.desc()).limit(1)
    )


def ensure_active_key(session: Session, cipher: TemplateCipher, alg: str) -> SigningKey:
    """The active key; made (and committed) on first start when there is none."""
    row = active_key(session)
    if row is not None:
        return row
    create_key(session, cipher, alg)
    try:
        session.commit()
    except IntegrityError:  # another worker made one at the same moment
        session.rollback()
    row = active_key(session)
    assert row is not None
    return row


def private_key(row: SigningKey, cipher: TemplateCipher) -> Key:
    """The row's private key; raises template_crypto.TemplateDecryptionError when the ring cannot open it."""
    plaintext = cipher.open(
        row.private_sealed, key_id=row.key_id, user_id=_SEAL_USER_ID, model_version=_SEAL_LABEL + row.kid
    )
    data = json.loads(plaintext)
    return RSAKey.import_key(data) if data.get("kty") == "RSA" else ECKey.import_key(data)


def published_keys(session: Session, retired_seconds: int, now: dt.datetime | None = None) -> list[SigningKey]:
    """The active key and every retired one still inside its verification window, newest first."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=retired_seconds)
    rows = session.scalars(select(SigningKey).order_by(SigningKey.id.desc())).all()
    return [row for row in rows if row.retired_at is None or _aware(row.retired_at) > cutoff]


def jwks(session: Session, retired_seconds: int) -> dict:
    return {"keys": [row.public_jwk for row in published_keys(session, retired_seconds)]}


def key_set(session: Session, retired_seconds: int) -> KeySet:
    """The published public keys as a joserfc KeySet (to verify an ``id_token_hint``)."""
    return KeySet.import_key_set(jwks(session, retired_seconds))


def rotate(session: Session, cipher: TemplateCipher, alg: str, retired_seconds: int) -> tuple[SigningKey, int, int]:
    """Retire the active key(s), make a new active one, delete retired keys past their window.

    Returns (the new key, how many were retired, how many expired ones were deleted); commits.
    """
    now = utcnow()
    retired = 0
    for row in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))).all():
        row.retired_at = now
        retired += 1
    cutoff = now - dt.timedelta(seconds=retired_seconds)
    deleted = 0
    for row in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_not(None))).all():
        if _aware(row.retired_at) <= cutoff:  # type: ignore[arg-type]
            session.delete(row)
            deleted += 1
    session.flush()
    new = create_key(session, cipher, alg)
    session.commit()
    return new, retired, deleted


def reseal_all(session: Session, cipher: TemplateCipher) -> int:
    """Template-key rotation: re-seal every signing key under the cipher's current key (not committed)."""
    count = 0
    for row in session.scalars(select(SigningKey).where(SigningKey.key_id != cipher.current_key_id)).all():
        key = private_key(row, cipher)
        row.private_sealed, row.key_id = _seal(cipher, row.kid, key.as_dict(private=True))
        count += 1
    return count


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands timezone-aware columns back naive (in UTC).
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
