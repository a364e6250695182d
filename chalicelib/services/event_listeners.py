"""An event publisher that also hands each published event to in-process listeners (the retrain
loop reacts to a train job's end and to its holdout stress tests' ends this way, issue 12)."""
from __future__ import annotations

import logging
from typing import Any, Callable

from chalicelib.entities.events import KileleEvent
from chalicelib.ports_events import EventPublisher

log = logging.getLogger("kilele.events")


class ListeningPublisher:
    """``publisher`` plus ``listeners``: each is called after an event was handed to the publisher
    (also when publishing failed: the state change happened all the same); a listener's error is
    logged, never raised to the writer of the state change."""

    def __init__(self, publisher: EventPublisher, listeners: list[Callable[[KileleEvent], None]]):
        self._publisher = publisher
        self._listeners = listeners

    def publish(self, event: KileleEvent) -> Any:
        try:
            return self._publisher.publish(event)
        finally:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # noqa: BLE001 - a reaction must not fail the job's own write
                    log.exception("a listener of %s %s failed", event.detail_type, event.detail.id)

    def __getattr__(self, name: str) -> Any:  # list_events and the rest are the publisher's
        return getattr(self._publisher, name)


__all__ = ["ListeningPublisher"]
