"""Kilele's events: one documented schema for every job's state changes and monitor breaches.

An event is what EventBridge carries (``source``, ``detail-type``, ``detail``) on AWS and what
the local stack's event log keeps, field for field, so an EventBridge rule written against the
local log's events matches the deployed ones. ``docs/events.md`` shows one example per detail type.

``detail`` fields:

- ``id``: the job's id (a managed image's name, a monitor's id); ``kind``: what it is (:class:`EventKind`);
- ``status`` and ``previous_status`` (None when the record was just created); ``reason``: why
  (the record's error, a breach's explanation), None when there is nothing to say;
- ``owner_id`` (the user the record belongs to), ``project_id`` and ``app`` where the record has them;
- ``time``: when the change was recorded (UTC, ISO 8601 with microseconds);
- ``links``: where to look (``{"job": "/train_jobs/<id>"}``, a report's URL ...);
- ``data``: fields of one kind only (a monitor breach's ``severity``, ``metric``, ``bin`` ...).
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Every Kilele event's ``source`` (what an EventBridge rule's pattern matches on).
EVENT_SOURCE = "kilele"


class EventKind(str, Enum):
    """What an event is about; each kind has one ``detail-type``."""

    TRAIN_JOB = "train_job"
    TRIAL = "trial"
    INFERENCE_JOB = "inference_job"
    STRESS_TEST = "stress_test"
    CONTINUOUS_TEST = "continuous_test"
    IMAGE_BUILD = "image_build"
    MONITOR = "monitor"
    APP_TIMELINE = "app_timeline"  # a step of the retrain loop on an app's timeline (issue 12 item 6)

    @property
    def detail_type(self) -> str:
        return DETAIL_TYPES[self]


DETAIL_TYPES: dict[EventKind, str] = {
    EventKind.TRAIN_JOB: "Kilele Train Job State Change",
    EventKind.TRIAL: "Kilele Trial State Change",
    EventKind.INFERENCE_JOB: "Kilele Inference Job State Change",
    EventKind.STRESS_TEST: "Kilele Stress Test State Change",
    EventKind.CONTINUOUS_TEST: "Kilele Continuous Test State Change",
    EventKind.IMAGE_BUILD: "Kilele Image Build State Change",
    EventKind.MONITOR: "Kilele Monitor State Change",
    EventKind.APP_TIMELINE: "Kilele App Timeline Step",
}


def _utc(value: datetime) -> datetime:
    # Naive times are the platform's UTC times (entities store them either way).
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class EventDetail(BaseModel):
    """The ``detail`` of a Kilele event (see the module's docstring for each field)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=256)
    kind: EventKind
    status: str = Field(min_length=1, max_length=64)
    previous_status: Optional[str] = Field(None, max_length=64)
    reason: Optional[str] = Field(None, max_length=4096)
    owner_id: str = Field(min_length=1, max_length=256)
    project_id: Optional[str] = Field(None, max_length=256)
    app: Optional[str] = Field(None, max_length=256)
    time: datetime
    links: dict[str, str] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return _utc(value)


class KileleEvent(BaseModel):
    """One event: what is published (``event_id`` is given by the publisher: EventBridge's
    EventId on AWS, a new id in the local log)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = EVENT_SOURCE
    detail_type: str
    detail: EventDetail
    event_id: Optional[str] = None

    @classmethod
    def state_change(cls, kind: EventKind, id: str, status: str, owner_id: str, time: datetime,
                     previous_status: Optional[str] = None, reason: Optional[str] = None,
                     project_id: Optional[str] = None, app: Optional[str] = None,
                     links: Optional[dict[str, str]] = None, data: Optional[dict[str, Any]] = None) -> "KileleEvent":
        """The event of ``kind`` with its detail type."""
        detail = EventDetail(id=id, kind=kind, status=status, previous_status=previous_status,
                             reason=_clip(reason), owner_id=owner_id, project_id=project_id, app=app, time=time,
                             links=links or {}, data=data or {})
        return cls(detail_type=kind.detail_type, detail=detail)

    @field_validator("source")
    @classmethod
    def _kilele_source(cls, value: str) -> str:
        if value != EVENT_SOURCE:
            raise ValueError(f"source must be {EVENT_SOURCE!r}")
        return value

    def model_post_init(self, context: Any) -> None:
        if self.detail_type != self.detail.kind.detail_type:
            raise ValueError(f"detail_type of a {self.detail.kind.value} event is {self.detail.kind.detail_type!r}")

    def detail_json(self) -> dict[str, Any]:
        """The detail as JSON values (what EventBridge's ``Detail`` carries)."""
        return self.detail.model_dump(mode="json")

    def to_dict(self) -> dict[str, Any]:
        """The event as the API and the local log show it (EventBridge's own field names)."""
        return {"event_id": self.event_id, "source": self.source, "detail-type": self.detail_type,
                "detail": self.detail_json()}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "KileleEvent":
        """The event :meth:`to_dict` (or an EventBridge delivery, ``id`` for ``event_id``) gave."""
        return cls(source=value["source"], detail_type=value["detail-type"], detail=EventDetail(**value["detail"]),
                   event_id=value.get("event_id") or value.get("id"))


def _clip(reason: Optional[str]) -> Optional[str]:
    # An error message can be a whole traceback: the event says why, the record keeps all of it.
    if reason is None:
        return None
    return reason if len(reason) <= 4096 else reason[:4093] + "..."


class EventFilters(BaseModel):
    """What a listing keeps: every given field must match (``owner_id`` is set by the service
    for users who are not admins, so they see only their own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Optional[EventKind] = None
    id: Optional[str] = None
    status: Optional[str] = None
    owner_id: Optional[str] = None
    project_id: Optional[str] = None
    app: Optional[str] = None
    since: Optional[datetime] = None

    @field_validator("since")
    @classmethod
    def _since_in_utc(cls, value: Optional[datetime]) -> Optional[datetime]:
        return None if value is None else _utc(value)  # a time without a zone is UTC

    def matches(self, event: KileleEvent) -> bool:
        d = event.detail
        return ((self.kind is None or d.kind == self.kind) and (self.id is None or d.id == self.id)
                and (self.status is None or d.status == self.status)
                and (self.owner_id is None or d.owner_id == self.owner_id)
                and (self.project_id is None or d.project_id == self.project_id)
                and (self.app is None or d.app == self.app)
                and (self.since is None or d.time >= _utc(self.since)))


__all__ = ["DETAIL_TYPES", "EVENT_SOURCE", "EventDetail", "EventFilters", "EventKind", "KileleEvent"]
