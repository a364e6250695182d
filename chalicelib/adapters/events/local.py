"""The local event publisher: an append-only log of events in the local stack's data directory.

The AWS twin is ``eventbridge.py`` beside this file; both are under
``tests/contract/test_event_publishers.py``. The log is ``events.jsonl``, one event per line
(:meth:`KileleEvent.to_dict`), written and flushed to disk before ``publish`` returns, so it
outlives the stack like the rest of its state. A line cut short by a crash was never reported
published: it is dropped when the log is opened again. Only the stack's own process writes it.

A page token is ``<number of events before the next page>.<id of the last one>`` (the id is
for people reading it; events are only ever appended, so a position stays valid: a follower asks
again with the last token for what came since).
"""
from __future__ import annotations

import json
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Optional

from chalicelib.entities.events import EventFilters, KileleEvent
from chalicelib.errors import InvalidInput, Unavailable
from chalicelib.ports_events import EVENT_PAGE_TOKEN_PATTERN

LOG_FILE = "events.jsonl"
_TOKEN = re.compile(EVENT_PAGE_TOKEN_PATTERN)


class LocalEventLog:
    """The event log in ``directory`` (made if missing)."""

    def __init__(self, directory: Path):
        self._path = Path(directory) / LOG_FILE
        self._lock = threading.Lock()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._offsets = self._open()
        except OSError as e:
            raise Unavailable(f"the local event log {self._path} cannot be opened: {e.strerror}") from e

    def _open(self) -> list[int]:
        """The byte offset of each whole line, after cutting off a last line a crash left unfinished."""
        offsets: list[int] = []
        position = 0
        if self._path.exists():
            with open(self._path, "rb") as log:
                for line in log:
                    if not line.endswith(b"\n"):
                        break
                    offsets.append(position)
                    position += len(line)
            if position != self._path.stat().st_size:
                os.truncate(self._path, position)
        offsets.append(position)  # the end: where the next event goes
        return offsets

    def publish(self, event: KileleEvent) -> str:
        event_id = str(uuid.uuid4())
        line = (json.dumps(event.model_copy(update={"event_id": event_id}).to_dict(), separators=(",", ":")) + "\n")
        data = line.encode()
        with self._lock:
            try:
                with open(self._path, "ab") as log:
                    log.write(data)
                    log.flush()
                    os.fsync(log.fileno())
            except OSError as e:
                # A partial line is cut off when the log is next opened; this event was not published.
                raise Unavailable(f"the event could not be written to {self._path}: {e.strerror}") from e
            self._offsets.append(self._offsets[-1] + len(data))
        return event_id

    def list_events(self, filters: EventFilters, page_token: Optional[str] = None,
                    limit: int = 100) -> tuple[list[KileleEvent], Optional[str]]:
        if page_token is not None and not _TOKEN.fullmatch(page_token):
            raise InvalidInput("page_token is not one this event log gave")
        with self._lock:
            count = len(self._offsets) - 1
            start = min(int(page_token.split(".")[0]) if page_token else 0, count)
            begin, end = self._offsets[start], self._offsets[count]
        found: list[KileleEvent] = []
        position, last_id = start, "0"
        if begin < end:
            with open(self._path, "rb") as log:
                log.seek(begin)
                chunk = log.read(end - begin)
            for line in chunk.splitlines():
                position += 1
                event = KileleEvent.from_dict(json.loads(line))
                last_id = event.event_id or "0"
                if filters.matches(event):
                    found.append(event)
                    if len(found) == limit:
                        break
        if position == start and page_token:
            return found, page_token  # nothing new: the position is where it was
        return found, f"{position}.{last_id}"


__all__ = ["LOG_FILE", "LocalEventLog"]
