"""In-memory fakes of the event publisher and scheduler ports (kept apart from fakes.py, which is
long): the events published, in order, listed like the local twin lists them; the schedules."""
from __future__ import annotations

import re
from typing import Optional

from chalicelib import ports
from chalicelib.entities.events import EventFilters, KileleEvent
from chalicelib.entities.schedules import Schedule
from chalicelib.errors import Conflict, InvalidInput, NotFound
from chalicelib.ports_events import EVENT_PAGE_TOKEN_PATTERN

from unit.services.fakes import Fake, implements


@implements(ports.EventPublisher)
class FakeEventPublisher(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[KileleEvent] = []

    def publish(self, event: KileleEvent) -> str:
        event_id = f"event-{len(self.published) + 1}"
        self.published.append(event.model_copy(update={"event_id": event_id}))
        return event_id

    def list_events(self, filters: EventFilters, page_token: Optional[str] = None,
                    limit: int = 100) -> tuple[list[KileleEvent], Optional[str]]:
        if page_token is not None and not re.fullmatch(EVENT_PAGE_TOKEN_PATTERN, page_token):
            raise InvalidInput("page_token is not one this event log gave")
        start = int(page_token.split(".")[0]) if page_token else 0
        found, position = [], start
        for event in self.published[start:]:
            position += 1
            if filters.matches(event):
                found.append(event)
                if len(found) == limit:
                    break
        return found, f"{position}.x"

    def changes(self) -> list[tuple[str, str, Optional[str], str]]:
        """(kind, id, previous status, status) of each event published, in order."""
        return [(e.detail.kind.value, e.detail.id, e.detail.previous_status, e.detail.status) for e in self.published]


@implements(ports.Scheduler)
class FakeScheduler(Fake):
    """Schedules in memory, validated as the twins validate them (firing is the twins' own: tests/contract)."""

    def __init__(self) -> None:
        super().__init__()
        self.schedules: dict[str, Schedule] = {}

    def create(self, schedule: Schedule) -> None:
        schedule.validate()
        if schedule.name in self.schedules:
            raise Conflict(f"a schedule named {schedule.name!r} exists")
        self.schedules[schedule.name] = schedule

    def update(self, schedule: Schedule) -> None:
        schedule.validate()
        if schedule.name not in self.schedules:
            raise NotFound(f"no schedule named {schedule.name!r}")
        self.schedules[schedule.name] = schedule

    def delete(self, name: str) -> None:
        if self.schedules.pop(name, None) is None:
            raise NotFound(f"no schedule named {name!r}")

    def get(self, name: str) -> Optional[Schedule]:
        return self.schedules.get(name)

    def list(self) -> list[Schedule]:
        return [self.schedules[n] for n in sorted(self.schedules)]
