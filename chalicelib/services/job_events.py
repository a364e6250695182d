"""Every job's state changes, published as Kilele events (issue 12).

Each job record has one owner (a store); its state changes are published in one place: a
decorator of that store (:func:`publishing_stores`) that, after a status write succeeded (a new
record, or a conditional ``set_status`` / ``set_build`` that returned True), reads the record
and publishes a ``<kind> State Change`` event through the :class:`EventPublisher` port. So no
service has to remember to publish, and a write that lost a race publishes nothing.

Publishing never fails the job: the record is what counts, an event is a notification. A
publisher that fails is logged (with the event) and the job goes on.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable, Optional

from chalicelib.entities.events import EventKind, KileleEvent
from chalicelib.ports import EventPublisher
from chalicelib.services import Clock

log = logging.getLogger("kilele.events")


class JobEvents:
    """Publishes job state changes, logging (never raising) a publisher's failure."""

    def __init__(self, publisher: EventPublisher):
        self._publisher = publisher

    def publish(self, event: KileleEvent) -> Optional[str]:
        """Publish ``event``; its id, or None when the publisher failed (logged)."""
        try:
            return self._publisher.publish(event)
        except Exception as e:  # noqa: BLE001 - a notification must never fail the job it is about
            log.error("event not published (%s): %s %s %s -> %s", e, event.detail_type, event.detail.id,
                      event.detail.previous_status, event.detail.status)
            return None


def _value(status: Any) -> Optional[str]:
    return None if status is None else getattr(status, "value", status)


class _PublishingStore:
    """A store whose status writes publish; every other call goes to the store as it is.

    ``describe(record)`` gives the event's fields of a record: ``(id, owner_id, project_id, app,
    reason, links)``. ``read(id)`` reads a record; ``status_method`` is the conditional write.
    """

    def __init__(self, store: Any, kind: EventKind, events: JobEvents, clock: Clock,
                 read: Callable[[Any, str], Any], describe: Callable[[Any], tuple], status_method: str):
        self._store = store
        self._kind = kind
        self._events = events
        self._clock = clock
        self._read = read
        self._describe = describe
        self._status_method = status_method

    def __getattr__(self, name: str) -> Any:
        if name == self._status_method:
            return self._set_status
        return getattr(self._store, name)

    def add(self, record: Any) -> None:
        self._store.add(record)
        self._publish(record, None, self._clock())

    def _set_status(self, record_id: str, status: Any, only_from: tuple, *args: Any, **fields: Any) -> bool:
        previous: Any
        if len(only_from) == 1:
            previous = only_from[0]
        else:  # which of them it was: read before the write (state changes are rare, a read is cheap)
            before = self._safe_read(record_id)
            previous = before.status if before is not None else None
        changed = getattr(self._store, self._status_method)(record_id, status, only_from, *args, **fields)
        if changed and _value(previous) != _value(status):
            after = self._safe_read(record_id)
            if after is not None:
                self._publish(after, previous, self._clock())
        return changed

    def _safe_read(self, record_id: str) -> Any:
        try:
            return self._read(self._store, record_id)
        except Exception as e:  # noqa: BLE001 - the write is what matters; the event is then left out, logged
            log.error("event not published: %s %s could not be read (%s)", self._kind.value, record_id, e)
            return None

    def _publish(self, record: Any, previous: Any, at: datetime) -> None:
        record_id, owner_id, project_id, app, reason, links = self._describe(record)
        self._events.publish(KileleEvent.state_change(
            self._kind, record_id, _value(record.status), owner_id, at, previous_status=_value(previous),
            reason=reason, project_id=project_id, app=app, links=links))


def publishing_stores(events: JobEvents, clock: Clock, train_jobs: Any = None, inference_jobs: Any = None,
                      stress_test_jobs: Any = None, managed_images: Any = None) -> dict[str, Any]:
    """The given stores, each wrapped so its records' state changes are published (by part name)."""
    wrapped: dict[str, Any] = {}
    if train_jobs is not None:
        wrapped["train_jobs"] = _PublishingStore(
            train_jobs, EventKind.TRAIN_JOB, events, clock, lambda s, i: s.get(i),
            lambda j: (j.id, j.user_id, None, j.app, j.error,
                       {"job": f"/train-jobs/{j.app}/{j.app_version}"}), "set_status")
    if inference_jobs is not None:
        wrapped["inference_jobs"] = _PublishingStore(
            inference_jobs, EventKind.INFERENCE_JOB, events, clock, lambda s, i: s.get(i),
            lambda j: (j.id, j.user_id, None, j.app, j.error,
                       {"job": f"/inference-jobs/{j.app}/{j.app_version}"}), "set_status")
    if stress_test_jobs is not None:
        wrapped["stress_test_jobs"] = _PublishingStore(
            stress_test_jobs, EventKind.STRESS_TEST, events, clock, lambda s, i: s.get(i, clock()),
            lambda j: (j.id, j.owner_id, j.project_id, None, j.error, {"job": f"/stress-tests/{j.id}"}),
            "set_status")
    if managed_images is not None:
        wrapped["managed_images"] = _PublishingStore(
            managed_images, EventKind.IMAGE_BUILD, events, clock, lambda s, i: s.get(i),
            lambda m: (m.name, m.owner_id, None, None, m.error, {"image": f"/managed-images/{m.name}"}),
            "set_build")
    return wrapped


__all__ = ["JobEvents", "publishing_stores"]
