"""Recovery links' rules (tokens, hashing, expiry, single use, purposes, revocation) and the reauth freshness check.

The link rules run against an in-memory SQLite database built from the models (no server); the freshness check
in a bare Flask app with the default cookie session."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator

import pytest
from flask import Flask, g, session
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from auth_web import reasons, reauth, recovery
from auth_web.config import Settings
from auth_web.models import STATUS_DISABLED, Base, FaceTemplate, User
from auth_web.template_crypto import development_cipher

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
DAY = 86400


@pytest.fixture
def db() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session_:
        yield session_
    engine.dispose()


def make_user(db: Session, name: str = "alice", templates: int = 0) -> User:
    user = User(username=name, username_key=name)
    db.add(user)
    db.flush()
    for _ in range(templates):
        db.add(
            FaceTemplate.seal([0.1] * 128, user_id=user.id, model_version="v", cipher=development_cipher(), quality=1)
        )
    db.commit()
    return user


def test_tokens_are_256_bit_urlsafe_and_only_their_sha256_is_stored(db: Session) -> None:
    user = make_user(db)
    issued = recovery.issue(db, user, "both", channel="cli", ttl_seconds=DAY, now=NOW)
    db.commit()
    assert len(issued.token) >= 43 and set(issued.token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert issued.link.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.token not in issued.link.token_hash
    assert recovery.link_url("https://auth.example/", issued.token) == f"https://auth.example/recover/{issued.token}"
    assert "token" not in recovery.issue_details(issued) and issued.token not in str(recovery.issue_details(issued))


def test_a_link_works_until_it_expires_and_only_once(db: Session) -> None:
    user = make_user(db)
    token = recovery.issue(db, user, "password", channel="admin", ttl_seconds=DAY, now=NOW).token
    db.commit()
    assert recovery.check(db, token, NOW + dt.timedelta(seconds=DAY - 1)).reason is None
    assert recovery.check(db, token, NOW + dt.timedelta(seconds=DAY)).reason == reasons.LINK_EXPIRED
    assert recovery.redeem(db, token, NOW + dt.timedelta(seconds=DAY)).reason == reasons.LINK_EXPIRED
    used = recovery.redeem(db, token, NOW + dt.timedelta(hours=1))
    assert used.reason is None and used.user is not None and used.user.id == user.id
    assert recovery.redeem(db, token, NOW + dt.timedelta(hours=2)).reason == reasons.LINK_USED
    assert recovery.check(db, token, NOW + dt.timedelta(hours=2)).reason == reasons.LINK_USED


def test_unknown_malformed_and_disabled(db: Session) -> None:
    user = make_user(db)
    token = recovery.issue(db, user, "face", channel="admin", ttl_seconds=DAY, now=NOW).token
    db.commit()
    for bad in ("", "x" * 65, "é" * 43, token[:-1] + ("A" if token[-1] != "A" else "B")):
        assert recovery.check(db, bad, NOW).reason == reasons.LINK_UNKNOWN
    user.status = STATUS_DISABLED
    db.commit()
    assert recovery.redeem(db, token, NOW).reason == reasons.DISABLED


def test_a_new_link_revokes_older_unused_ones_of_the_same_purpose_only(db: Session) -> None:
    user = make_user(db)
    first = recovery.issue(db, user, "both", channel="admin", ttl_seconds=DAY, now=NOW)
    password = recovery.issue(db, user, "password", channel="admin", ttl_seconds=DAY, now=NOW)
    second = recovery.issue(db, user, "both", channel="admin", ttl_seconds=DAY, now=NOW)
    db.commit()
    assert (first.revoked, password.revoked, second.revoked) == (0, 0, 1)
    assert recovery.check(db, first.token, NOW).reason == reasons.LINK_REVOKED
    assert recovery.check(db, password.token, NOW).reason is None
    assert recovery.check(db, second.token, NOW).reason is None


def test_purposes_and_their_steps(db: Session) -> None:
    with pytest.raises(recovery.PurposeError):
        recovery.issue(db, make_user(db), "admin", channel="cli", ttl_seconds=DAY)
    state = recovery.RecoveryState(user_id=1, link_id=1, purpose="both", expires_at=0)
    assert state.remaining == ["password", "face"] and state.allows("face")
    state.done.append("password")
    assert state.remaining == ["face"] and not state.allows("password")
    assert recovery.RecoveryState(1, 1, "password", 0).allows("face") is False
    assert recovery.RecoveryState(1, 1, "face", 0).allows("password") is False


def test_a_mailed_link_never_replaces_an_enrolled_face(db: Session) -> None:
    assert recovery.self_service_purpose(make_user(db, "enrolled", templates=2)) == "password"
    assert recovery.self_service_purpose(make_user(db, "bare")) == "both"


# -- reauth freshness ---------------------------------------------------------------------------------------------


@pytest.fixture
def app() -> Flask:
    flask_app = Flask(__name__)
    flask_app.config["SECRET_KEY"] = "unit"
    flask_app.config["FACEAUTH_SETTINGS"] = Settings(reauth_max_age_seconds=300)
    return flask_app


def test_freshness_is_the_ceremony_age_within_the_window(app: Flask) -> None:
    with app.test_request_context("/"):
        g.user = object()
        assert not reauth.is_fresh()  # no ceremony at all
        now = int(time.time())
        session["auth_time"] = now - 10
        assert reauth.is_fresh() and 280 <= reauth.seconds_left() <= 290
        session["auth_time"] = now - 299
        assert reauth.is_fresh()
        session["auth_time"] = now - 301
        assert not reauth.is_fresh() and reauth.seconds_left() == 0
        assert reauth.is_fresh(max_age=600)
        session["auth_time"] = now + 3600  # not written by this clock
        assert not reauth.is_fresh()
        session["auth_time"] = "recent"  # not an int
        assert not reauth.is_fresh()
        session["auth_time"] = now
        g.user = None
        assert not reauth.is_fresh()  # no signed-in user, nothing is fresh
