"""The audit log: login successes, failures and lockouts, API key creations and revocations
(who, when, from which address, how it ended), readable by admins, newest first."""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.entities import AuditEvent, AuditEventType, User
from chalicelib.permissions import Action, require
from chalicelib.ports import AuditLog
from chalicelib.services import Clock, new_id, utc_now


class AuditService:
    def __init__(self, log: AuditLog, clock: Clock = utc_now):
        self._log = log
        self._clock = clock

    def record(self, event: AuditEventType, email: str, source_ip: Optional[str], **details: Any) -> None:
        """Append an event that happens now."""
        self._log.add(AuditEvent(new_id(), self._clock(), event, email, source_ip, details))

    def list_events(self, actor: User, limit: int = 50, page_token: Optional[str] = None) -> dict[str, Any]:
        """A page of events, newest first (admins): ``{"events": [...], "next_page_token": ...}``
        (None on the last page)."""
        require(actor, Action.READ_AUDIT_LOG)
        events, token = self._log.page(self._clock(), limit, page_token)
        return {"events": [e.to_dict() for e in events], "next_page_token": token}
