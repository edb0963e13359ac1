"""Server-side sessions in Redis.

The cookie holds only a random id (``secrets.token_urlsafe``); Redis holds the data under the SHA-256 of that id,
so a Redis dump does not reveal usable cookies. Idle timeout = the key's TTL, refreshed while the user is active;
absolute timeout = the creation time stored in the data. A per-user set lists the user's sessions so that they can
be listed, revoked, and all ended when the user is deleted or disabled. The id is rotated at login.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from typing import Any

import redis
from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

log = logging.getLogger(__name__)

_TOUCH_INTERVAL_SECONDS = 60


def session_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class RedisSession(CallbackDict, SessionMixin):
    def __init__(
        self,
        initial: dict[str, Any] | None = None,
        *,
        sid: str,
        new: bool,
        created: float,
        last_written: float = 0.0,
        meta: dict[str, Any] | None = None,
        unavailable: bool = False,
    ) -> None:
        def on_update(_self: CallbackDict) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = new
        self.created = created
        self.last_written = last_written
        self.meta = meta or {}
        self.modified = False
        self.unavailable = unavailable
        # The server-side record to delete when this response is saved (rotation, logout).
        self.previous: tuple[str, int | None] | None = None

    @property
    def hash(self) -> str:
        return session_hash(self.sid)

    def rotate(self) -> None:
        """New id, same data (call at login, before putting the user in): defeats session fixation."""
        if not self.new and self.previous is None:
            self.previous = (self.hash, self.meta.get("user_id"))
        self.sid = secrets.token_urlsafe(32)
        self.created = time.time()
        self.meta = {}
        self.new = True
        self.modified = True

    def end(self) -> None:
        """Log out: the server-side record is deleted; what is stored afterwards (a flash) gets a fresh id."""
        self.rotate()
        self.clear()


class RedisSessionInterface(SessionInterface):
    def __init__(self, client: redis.Redis, prefix: str, idle_seconds: int, absolute_seconds: int) -> None:
        self.client = client
        self.prefix = prefix
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds

    # -- keys -------------------------------------------------------------------------------------

    def data_key(self, hash_: str) -> str:
        return f"{self.prefix}session:{hash_}"

    def user_key(self, user_id: int) -> str:
        return f"{self.prefix}user_sessions:{user_id}"

    # -- Flask hooks ------------------------------------------------------------------------------

    def open_session(self, app: Flask, request: Request) -> RedisSession:
        now = time.time()
        sid = request.cookies.get(self.get_cookie_name(app), "")
        if sid and 20 <= len(sid) <= 128:
            try:
                raw = self.client.get(self.data_key(session_hash(sid)))
            except redis.RedisError:
                log.warning("session_store_unavailable")
                return RedisSession(sid=sid, new=False, created=now, unavailable=True)
            if raw is not None:
                stored = json.loads(raw)
                created = float(stored.get("created", 0))
                if now - created <= self.absolute_seconds:
                    return RedisSession(
                        stored.get("data", {}),
                        sid=sid,
                        new=False,
                        created=created,
                        last_written=float(stored.get("last_seen", 0)),
                        meta=stored.get("meta", {}),
                    )
                self._delete(session_hash(sid), stored.get("data", {}).get("user_id"))
        return RedisSession(sid=secrets.token_urlsafe(32), new=True, created=now)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, RedisSession)
        if session.unavailable:
            return
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if session.previous is not None:
            self._delete(*session.previous)
            session.previous = None
        if not session:
            if not session.new:  # emptied: forget it
                self._delete(session.hash, session.meta.get("user_id"))
            if request_had_cookie(name):
                response.delete_cookie(name, domain=domain, path=path)
            return  # nothing worth a cookie (a static file, a health check, a logout)
        now = time.time()
        if not session.modified and not session.new and now - session.last_written < _TOUCH_INTERVAL_SECONDS:
            return
        remaining = int(self.absolute_seconds - (now - session.created))
        ttl = max(1, min(self.idle_seconds, remaining))
        user_id = session.get("user_id")
        meta = {
            **session.meta,
            "user_id": user_id,
            "address": session.meta.get("address") or _client_address(),
            "agent": session.meta.get("agent") or _user_agent(),
        }
        payload = json.dumps({"data": dict(session), "created": session.created, "last_seen": now, "meta": meta})
        pipe = self.client.pipeline()
        pipe.set(self.data_key(session.hash), payload, ex=ttl)
        if user_id is not None:
            pipe.sadd(self.user_key(user_id), session.hash)
            pipe.expire(self.user_key(user_id), self.absolute_seconds)
        try:
            pipe.execute()
        except redis.RedisError:
            log.warning("session_store_unavailable")
            return
        response.set_cookie(
            name,
            session.sid,
            httponly=True,
            samesite="Lax",
            secure=self._secure(app),
            domain=domain,
            path=path,
        )
        response.vary.add("Cookie")

    def _secure(self, app: Flask) -> bool:
        from flask import request

        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure

    # -- per-user management ----------------------------------------------------------------------

    def _delete(self, hash_: str, user_id: int | None) -> None:
        pipe = self.client.pipeline()
        pipe.delete(self.data_key(hash_))
        if user_id is not None:
            pipe.srem(self.user_key(user_id), hash_)
        pipe.execute()

    def list_user_sessions(self, user_id: int) -> list[dict[str, Any]]:
        """The user's live sessions, newest first; stale members of the set are pruned."""
        hashes = sorted(h.decode() for h in self.client.smembers(self.user_key(user_id)))
        if not hashes:
            return []
        raws = self.client.mget([self.data_key(h) for h in hashes])
        sessions = []
        for hash_, raw in zip(hashes, raws, strict=True):
            if raw is None:
                self.client.srem(self.user_key(user_id), hash_)
                continue
            stored = json.loads(raw)
            if stored.get("data", {}).get("user_id") != user_id:
                self.client.srem(self.user_key(user_id), hash_)
                continue
            sessions.append(
                {
                    "handle": hash_[:24],
                    "created": dt.datetime.fromtimestamp(stored["created"], dt.UTC),
                    "last_seen": dt.datetime.fromtimestamp(stored["last_seen"], dt.UTC),
                    "address": stored.get("meta", {}).get("address"),
                    "agent": stored.get("meta", {}).get("agent"),
                    "hash": hash_,
                }
            )
        sessions.sort(key=lambda s: s["created"], reverse=True)
        return sessions

    def revoke(self, user_id: int, handle: str) -> bool:
        for hash_ in (h.decode() for h in self.client.smembers(self.user_key(user_id))):
            if len(handle) >= 16 and hash_.startswith(handle):
                self._delete(hash_, user_id)
                return True
        return False

    def end_all(self, user_id: int) -> int:
        """End every session of the user (deleted, disabled, or "sign out everywhere")."""
        hashes = [h.decode() for h in self.client.smembers(self.user_key(user_id))]
        pipe = self.client.pipeline()
        for hash_ in hashes:
            pipe.delete(self.data_key(hash_))
        pipe.delete(self.user_key(user_id))
        pipe.execute()
        return len(hashes)


def request_had_cookie(name: str) -> bool:
    from flask import request

    return name in request.cookies


def _client_address() -> str | None:
    from flask import request

    return request.remote_addr


def _user_agent() -> str | None:
    from flask import request

    return (request.user_agent.string or "")[:200] or None
