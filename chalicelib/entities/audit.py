"""The audit log's events: who did what to their credentials, when, from where, and how it ended."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Optional


class AuditEventType(str, Enum):
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_LOCKED_OUT = "login.locked_out"  # a failure that started a lockout (details: scope, seconds)
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"

    @property
    def outcome(self) -> str:
        return {AuditEventType.LOGIN_FAILED: "failure", AuditEventType.LOGIN_LOCKED_OUT: "locked_out"}.get(
            self, "success")


@dataclass
class AuditEvent:
    id: str
    at: datetime
    event: AuditEventType
    email: str  # the account concerned: the caller, or the email a failed login gave
    source_ip: Optional[str] = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return self.event.outcome

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "datetime": self.at.isoformat(),
            "event": self.event.value,
            "outcome": self.outcome,
            "email": self.email,
            "source_ip": self.source_ip,
            "details": dict(self.details),
        }
