"""Query schema of ``GET /events`` (issue 12): the filters of the event listing and its paging."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from pydantic import Field

from chalicelib.entities.events import EventFilters, EventKind
from chalicelib.ports_events import EVENT_PAGE_TOKEN_PATTERN, MAX_EVENTS_PAGE
from chalicelib.schemas import AppName, Id, Int, Schema
from chalicelib.schemas_responses import Out


class EventsQuery(Schema):
    kind: Optional[EventKind] = Field(None, description="only events about this kind of record")
    id: Optional[Id] = Field(None, description="only events about this record (a job id, an image name)")
    status: Optional[str] = Field(None, max_length=64, pattern=r"^[A-Za-z_]+$",
                                  description="only events whose new status is this")
    owner_id: Optional[Id] = Field(None, description="only this user's events (admins; others see their own)")
    project_id: Optional[Id] = None
    app: Optional[AppName] = None
    since: Optional[datetime] = Field(None, description="only events at or after this time (ISO 8601)")
    limit: Int = Field(100, ge=1, le=MAX_EVENTS_PAGE)
    page_token: Optional[str] = Field(None, max_length=150, json_schema_extra={"pattern": EVENT_PAGE_TOKEN_PATTERN},
                                      description="the next_page_token of the previous page (given after the last "
                                      "page too: ask again with it later for the events that came since)")

    def filters(self) -> EventFilters:
        return EventFilters(kind=self.kind, id=self.id, status=self.status, owner_id=self.owner_id,
                            project_id=self.project_id, app=self.app, since=self.since)


class AdvanceSchedulerClockRequest(Schema):
    seconds: float = Field(gt=0, le=10 * 366 * 86400, description="how far to move the local scheduler's manual clock")


class FiringOut(Out):
    """A schedule's firing (chalicelib/entities/schedules.py's ``Firing.to_invocation``)."""

    schedule: str
    target: str
    payload: dict[str, Any]
    time: datetime


class SchedulerClockOut(Out):
    now: datetime
    fired: list[FiringOut]


__all__ = ["AdvanceSchedulerClockRequest", "EventsQuery", "FiringOut", "SchedulerClockOut"]
