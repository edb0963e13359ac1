"""The audit log: one row per security-relevant event, and the same event as a log line.

Never images, embeddings, passwords or session ids. If the database is down the row is lost but the log line
is still written (the request itself then fails with 503).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from auth_web import context
from auth_web import metrics as auth_metrics
from auth_web.models import AuditEvent
from faceauth_common.logs import request_id_var

log = logging.getLogger("auth_web.audit")


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
    db_session: Session | None = None,
    client_address: str | None = None,
) -> None:
    """One audit row and its log line and metric. ``event``, ``result`` and ``reason`` come from ``reasons.py``.

    In a request the row is written in a transaction of its own (it stays even when the request's fails), with
    the request's address, user agent, id and signed-in actor. Outside one (the CLI) the caller passes its
    ``db_session`` (the row joins the caller's transaction) and its ``client_address``.
    """
    in_request = has_request_context()
    actor = getattr(g, "user", None) if in_request else None
    row = AuditEvent(
        event=event,
        result=result,
        reason=reason,
        user_id=user_id,
        claimed_username=(claimed_username or None) and claimed_username[:64],
        actor_user_id=actor.id if actor is not None else None,
        client_address=request.remote_addr if in_request else client_address,
        user_agent=(request.user_agent.string[:255] or None) if in_request else None,
        request_id=request_id_var.get()[:128] if in_request else None,
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
    if db_session is not None:
        db_session.add(row)
        return
    factory = context.session_factory()
    try:
        with factory() as session, session.begin():
            session.add(row)
    except SQLAlchemyError:
        log.error("audit_write_failed", extra={"fields": {"audit_event": event, "reason": reason}})
