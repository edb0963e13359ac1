"""The audit log: one row per security-relevant event, and the same event as a log line.

Never images, embeddings, passwords or session ids. If the database is down the row is lost but the log line
is still written (the request itself then fails with 503).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy.exc import SQLAlchemyError

from auth_web import context
from auth_web import metrics as auth_metrics
from auth_web.models import AuditEvent
from faceauth_common.logs import request_id_var

log = logging.getLogger("auth_web.audit")

SUCCESS = "success"
FAILURE = "failure"
ERROR = "error"


def record(
    event: str,
    result: str,
    reason: str,
    *,
    user_id: int | None = None,
    claimed_username: str | None = None,
    live_score: float | None = None,
    match_distance: float | None = None,
    matched_frames: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    actor = getattr(g, "user", None) if has_request_context() else None
    row = AuditEvent(
        event=event,
        result=result,
        reason=reason,
        user_id=user_id,
        claimed_username=(claimed_username or None) and claimed_username[:64],
        actor_user_id=actor.id if actor is not None else None,
        client_address=request.remote_addr if has_request_context() else None,
        user_agent=(request.user_agent.string[:255] or None) if has_request_context() else None,
        request_id=request_id_var.get()[:128],
        live_score=live_score,
        match_distance=match_distance,
        matched_frames=matched_frames,
        details=details or None,
    )
    fields = {
        "audit_event": event,
        "result": result,
        "reason": reason,
        "user_id": user_id,
        "claimed_username": row.claimed_username,
        "client_address": row.client_address,
        "live_score": live_score,
        "match_distance": match_distance,
        "matched_frames": matched_frames,
    }
    log.info("audit", extra={"fields": fields})
    auth_metrics.audit_event(event, result, reason)
    factory = context.session_factory()
    try:
        with factory() as session, session.begin():
            session.add(row)
    except SQLAlchemyError:
        log.error("audit_write_failed", extra={"fields": {"audit_event": event, "reason": reason}})
