"""Events: every job's state changes and monitor breaches, as the platform published them (issue 12)."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable, Iterator, Optional

from kilele._http import HttpClient

#: The kinds of records events are about (an event's ``detail.kind``).
EVENT_KINDS = ("train_job", "trial", "inference_job", "stress_test", "continuous_test", "image_build", "monitor")


class EventsMixin(HttpClient):
    """``list_events``, ``follow_events`` and ``advance_scheduler_clock``."""

    def list_events(self, kind: Optional[str] = None, id: Optional[str] = None, status: Optional[str] = None,
                    owner_id: Optional[str] = None, project_id: Optional[str] = None, app: Optional[str] = None,
                    since: Optional[datetime] = None, limit: int = 100,
                    page_token: Optional[str] = None) -> dict[str, Any]:
        """One page of events, oldest first: ``{"events": [...], "next_page_token": ...}``. Each
        event is EventBridge's shape (``source`` "kilele", ``detail-type``, ``detail`` with ``id``,
        ``kind``, ``status``, ``previous_status``, ``reason``, ``owner_id``, ``time``, ``links`` ...;
        see docs/events.md). Admins see everyone's (``owner_id`` to choose), others their own.
        The token is given after the last page too: pass it later to get only what came since."""
        params = {"kind": kind, "id": id, "status": status, "owner_id": owner_id, "project_id": project_id,
                  "app": app, "since": since.isoformat() if since else None, "limit": limit, "page_token": page_token}
        return self._request("GET", "/events", params=params)

    def follow_events(self, poll_rate_sec: float = 2.0, stop: Optional[Callable[[], bool]] = None,
                      **filters: Any) -> Iterator[dict[str, Any]]:
        """Every event that matches ``filters`` (those of :meth:`list_events`), from the first,
        then each new one as it is published, polling every ``poll_rate_sec``; ends when ``stop()``
        returns True (checked between polls), or never."""
        token = filters.pop("page_token", None)
        while True:
            page = self.list_events(page_token=token, **filters)
            yield from page["events"]
            token = page["next_page_token"]
            if page["events"]:
                continue  # more may be waiting: ask again at once
            if stop is not None and stop():
                return
            time.sleep(poll_rate_sec)

    def advance_scheduler_clock(self, seconds: float) -> dict[str, Any]:
        """Move the local stack's scheduler clock forward by ``seconds`` and fire the schedules
        then due (admins; a local stack started with ``KILELE_LOCAL_SCHEDULER_CLOCK=manual``).
        Returns ``{"now", "fired": [{"schedule", "target", "payload", "time"}]}``."""
        return self._request("POST", "/local/scheduler/advance", json={"seconds": seconds})


__all__ = ["EVENT_KINDS", "EventsMixin"]
