"""The audit log: every organizer action and every state change, with who, when, before and after."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from .models import AuditEvent

log = logging.getLogger(__name__)


def record(
    session: Session,
    action: str,
    obj: Any,
    *,
    actor_id: int | None = None,
    challenge_id: int | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Add an AuditEvent for obj (a model instance) to the session; the caller commits with its change."""
    event = AuditEvent(
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=getattr(obj, "id", None),
        actor_id=actor_id,
        challenge_id=challenge_id,
        before=before,
        after=after,
        reason=reason,
    )
    session.add(event)
    log.info("audit %s %s#%s by %s: %s -> %s", action, event.object_type, event.object_id, actor_id, before, after)
    return event
