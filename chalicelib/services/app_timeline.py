"""An app's timeline (issue 12 item 6): every step of the retrain loop with its reason.

Entries are kept per app (``loop/<user id>/<app>/timeline.json``, the newest ``MAX_ENTRIES``)
and each is published as a ``Kilele App Timeline Step`` event (``status``: the step, ``reason``:
why), so users can wire notifications with an EventBridge rule as for any job.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any

from chalicelib.entities import User
from chalicelib.entities.events import EventKind, KileleEvent
from chalicelib.errors import DomainError, NotFound
from chalicelib.ports import ApplicationStore, BlobStore
from chalicelib.ports_events import EventPublisher
from chalicelib.services import Clock, utc_now

log = logging.getLogger("kilele.timeline")

MAX_ENTRIES = 500


def _key(user_id: str, app: str) -> str:
    return f"loop/{user_id}/{app}/timeline.json"


class AppTimeline:
    """Record and read apps' timelines."""

    def __init__(self, blobs: BlobStore, events: EventPublisher, apps: ApplicationStore, clock: Clock = utc_now):
        self._blobs = blobs
        self._events = events
        self._apps = apps
        self._clock = clock
        self._lock = threading.Lock()  # one process's writers; each app's steps come from one place at a time

    def record(self, user_id: str, app: str, step: str, reason: str, data: dict[str, Any]) -> dict[str, Any]:
        """Append a step (``breach_seen``, ``retrain_started``...) with why; publish it (a
        publisher's failure is logged: the timeline is the record)."""
        entry = {"time": self._clock().isoformat(), "step": step, "reason": reason, "data": data}
        with self._lock:
            entries = self._read(user_id, app)
            entries.append(entry)
            self._blobs.put_bytes(_key(user_id, app), json.dumps(entries[-MAX_ENTRIES:]).encode(), "application/json")
        log.info("app %s/%s: %s -- %s", user_id, app, step, reason)
        event = KileleEvent.state_change(EventKind.APP_TIMELINE, id=f"{app}/{step}", status=step.upper(),
                                         owner_id=user_id, time=self._clock(), reason=reason, app=app,
                                         links={"timeline": f"/apps/{app}/timeline"}, data=data)
        try:
            self._events.publish(event)
        except DomainError as e:
            log.warning("could not publish the step %s of app %s: %s", step, app, e)
        return entry

    def get(self, actor: User, app: str) -> list[dict[str, Any]]:
        """The app's timeline, oldest first (an app without steps has an empty one)."""
        if self._apps.get(actor.id, app) is None:
            raise NotFound(f"no app {app!r} of yours")
        return self._read(actor.id, app)

    def _read(self, user_id: str, app: str) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self._blobs.get_bytes(_key(user_id, app))))
        except NotFound:
            return []


__all__ = ["AppTimeline", "MAX_ENTRIES"]
