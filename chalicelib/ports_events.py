"""The port of events: one publisher of every job's state changes and of monitor breaches.

A section of :mod:`chalicelib.ports` kept in its own module (ports.py re-exports every name).
The publisher has an AWS twin (EventBridge ``PutEvents`` on the stack's bus,
``adapters/events/eventbridge.py``) and a local twin (an append-only log in the local stack's
data directory, ``adapters/events/local.py``), both under ``tests/contract/test_event_publishers.py``.
The schema of an event is :class:`chalicelib.entities.events.KileleEvent` (``docs/events.md``).
"""
from __future__ import annotations

from typing import Optional, Protocol

from chalicelib.entities.events import EventFilters, KileleEvent

#: The most events one page holds.
MAX_EVENTS_PAGE = 1000
#: What a page token looks like in both twins: ``<number>.<event id>``, the position after the
#: last event of a page (the local log's count of events before it, or EventBridge's microseconds
#: of its time). Every string of this form is a position (the OpenAPI document states it), so a
#: token is refused (``InvalidInput``) only when it does not have this form.
EVENT_PAGE_TOKEN_PATTERN = r"^[0-9]{1,20}\.[A-Za-z0-9-]{1,128}$"


class EventPublisher(Protocol):
    """Publishes Kilele events and lists those published.

    ``publish`` raises ``errors.Unavailable`` when the bus or log cannot take the event (callers
    that publish a job's state change log that and carry on: the job's record is what counts).
    ``list_events`` pages through published events oldest first; its page tokens are opaque and
    belong to the twin that gave them (``errors.InvalidInput`` for one not of the form
    :data:`EVENT_PAGE_TOKEN_PATTERN`).
    """

    def publish(self, event: KileleEvent) -> str:
        """Publish ``event``; returns its event id (EventBridge's EventId, or the local log's)."""

    def list_events(self, filters: EventFilters, page_token: Optional[str] = None,
                    limit: int = 100) -> tuple[list[KileleEvent], Optional[str]]:
        """Up to ``limit`` events that match ``filters``, oldest first, after the page that gave
        ``page_token`` (None: from the first); and the token that continues after the last event
        returned -- always given, so a follower can ask again later for what came since."""


class NoEventPublisher:
    """Publishes nothing and lists nothing (tests of services that do not look at events)."""

    def publish(self, event: KileleEvent) -> str:
        return ""

    def list_events(self, filters: EventFilters, page_token: Optional[str] = None,
                    limit: int = 100) -> tuple[list[KileleEvent], Optional[str]]:
        return [], page_token


__all__ = ["EVENT_PAGE_TOKEN_PATTERN", "EventPublisher", "MAX_EVENTS_PAGE", "NoEventPublisher"]
