"""The local scheduler: fires schedules in the local stack's process, by a clock tests can drive.

The AWS twin is ``eventbridge.py`` beside this file (EventBridge Scheduler); both are under
``tests/contract/test_schedulers.py``. Schedules and when each is next due are kept in
``schedules.json`` in the given directory (the local stack's data directory), rewritten
atomically on every change, so they outlive a restart.

Firing (:meth:`LocalScheduler.fire_due`): each enabled schedule whose due time has come fires
once, and its next due time is computed from *now*, not from the missed one -- so a stack that
was stopped for a day fires an hourly schedule once on start-up, not 24 times (EventBridge
Scheduler would have fired each; here nothing ran them, and one run over everything that arrived
since catches up). That firing's time is the latest due time it stands for. The next due time is saved before the target runs: a crash while a target
runs does not fire it again on start-up (at most once per due time). A target that raises, or a
target name nobody registered, is logged and recorded on the schedule (``last_error``).

In the stack a thread calls ``fire_due`` about every second (:meth:`start`/:meth:`stop`); a test
uses a :class:`ManualClock` and calls ``clock.advance(seconds)`` then ``fire_due()`` itself.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from chalicelib.entities.schedules import Firing, Schedule
from chalicelib.errors import Conflict, NotFound, Unavailable
from chalicelib.ports_schedules import SchedulerClock
from chalicelib.schedule_expressions import RateExpression

log = logging.getLogger("kilele.schedules")
STATE_FILE = "schedules.json"


class SystemClock:
    """The machine's UTC time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that moves only when told (tests, and a local stack started with a manual clock)."""

    def __init__(self, start: Optional[datetime] = None):
        self._now = start or datetime.now(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move the time forward by ``seconds`` (never back); returns the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


@dataclass
class _Entry:
    schedule: Schedule
    anchor: datetime  # what a rate counts from: its creation (or last change of expression)
    next_due: Optional[datetime]
    last_fired: Optional[datetime] = None
    last_error: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"schedule": self.schedule.to_dict(), "anchor": iso(self.anchor), "next_due": iso(self.next_due),
                "last_fired": iso(self.last_fired), "last_error": self.last_error}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "_Entry":
        time = lambda t: datetime.fromisoformat(t) if t else None  # noqa: E731
        return cls(Schedule.from_dict(value["schedule"]), time(value["anchor"]), time(value["next_due"]),
                   time(value.get("last_fired")), value.get("last_error"))


class LocalScheduler:
    """Schedules kept in ``directory``, fired by ``clock`` through ``targets`` (a ScheduleTargets)."""

    name = "scheduler"

    def __init__(self, directory: Path, targets: Any, clock: Optional[SchedulerClock] = None,
                 poll_seconds: float = 1.0):
        self._path = Path(directory) / STATE_FILE
        self._targets = targets
        self.clock = clock or SystemClock()
        self._poll = poll_seconds
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._entries = self._load()
        except (OSError, ValueError, KeyError) as e:
            raise Unavailable(f"the local schedules in {self._path} cannot be read: {e}") from e

    # -- the port --------------------------------------------------------------------------------

    def create(self, schedule: Schedule) -> None:
        schedule.validate()
        with self._lock:
            if schedule.name in self._entries:
                raise Conflict(f"a schedule named {schedule.name!r} exists")
            now = self.clock.now()
            self._change(schedule.name, _Entry(schedule, now, self._next(schedule, now, now)))

    def update(self, schedule: Schedule) -> None:
        schedule.validate()
        with self._lock:
            entry = self._entries.get(schedule.name)
            if entry is None:
                raise NotFound(f"no schedule named {schedule.name!r}")
            now = self.clock.now()
            anchor = entry.anchor if entry.schedule.expression == schedule.expression else now
            self._change(schedule.name, _Entry(schedule, anchor, self._next(schedule, now, anchor),
                                               entry.last_fired, entry.last_error))

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self._entries:
                raise NotFound(f"no schedule named {name!r}")
            self._change(name, None)

    def get(self, name: str) -> Optional[Schedule]:
        with self._lock:
            entry = self._entries.get(name)
            return entry.schedule if entry else None

    def list(self) -> list[Schedule]:
        with self._lock:
            return [self._entries[name].schedule for name in sorted(self._entries)]

    # -- the local twin's own ------------------------------------------------------------------

    def status(self, name: str) -> dict[str, Any]:
        """When the schedule is next due, last fired, and its last target error (for people and tests)."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                raise NotFound(f"no schedule named {name!r}")
            return entry.to_dict()

    def fire_due(self) -> list[Firing]:
        """Fire each enabled schedule that is due, once, and return the firings made."""
        with self._lock:
            fired = self._take_due()
        return self._invoke(fired)

    def now(self) -> datetime:
        """What time this scheduler's clock says it is."""
        return self.clock.now()

    def advance(self, seconds: float) -> list[Firing]:
        """Move a manual clock forward by ``seconds`` and fire what is then due (the firings made,
        whichever thread fires them first); ``Conflict`` if this scheduler runs on the system clock."""
        move = getattr(self.clock, "advance", None)
        if move is None:
            raise Conflict("this scheduler runs on the system clock; start the local stack with "
                           "KILELE_LOCAL_SCHEDULER_CLOCK=manual to drive it")
        with self._lock:  # the stack's own thread cannot fire between the move and the take
            move(seconds)
            fired = self._take_due()
        return self._invoke(fired)

    def _take_due(self) -> list[Firing]:
        """The firings due now, each schedule's next due time moved past now and saved (under the lock)."""
        now = self.clock.now()
        due = [e for e in self._entries.values() if e.schedule.enabled and e.next_due and e.next_due <= now]
        fired = []
        for entry in due:
            fired.append(Firing(entry.schedule.name, entry.schedule.target, dict(entry.schedule.payload),
                                self._latest_due(entry, now)))
            entry.last_fired = now
            entry.next_due = self._next(entry.schedule, now, entry.anchor)
        if due:
            self._save()  # before the targets run: at most once per due time
        return fired

    def _invoke(self, fired: list[Firing]) -> list[Firing]:
        for firing in fired:  # outside the lock: a target may create or change schedules
            error = None
            try:
                self._targets.invoke(firing)
            except Exception as e:  # noqa: BLE001 - one target failing must not stop the others or the clock
                error = f"{type(e).__name__}: {e}"[:2000]
                log.error("schedule %s: its target %s failed: %s", firing.schedule, firing.target, error)
            with self._lock:
                entry = self._entries.get(firing.schedule)
                if entry is not None and entry.last_error != error:
                    entry.last_error = error
                    self._save()
        return fired

    def start(self, context: Any = None) -> None:
        """Fire due schedules about every ``poll_seconds`` in a thread, until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kilele-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def health(self) -> dict[str, Any]:
        alive = self._thread is not None and self._thread.is_alive()
        return {"ok": alive, "detail": f"{len(self._entries)} schedule(s)" if alive else "stopped"}

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.fire_due()
            except Exception as e:  # noqa: BLE001 - a disk error: said, and tried again next second
                log.error("the local scheduler could not fire: %s", e)

    # -- state -------------------------------------------------------------------------------------

    @staticmethod
    def _next(schedule: Schedule, after: datetime, anchor: datetime) -> Optional[datetime]:
        if not schedule.enabled:
            return None
        expression = schedule.parsed()
        if isinstance(expression, RateExpression):
            return expression.next_after(after, anchor)
        return expression.next_after(after)

    def _latest_due(self, entry: _Entry, now: datetime) -> datetime:
        """The last due time up to ``now``: a run that catches up stands for the latest one it replaces."""
        expression = entry.schedule.parsed()
        if isinstance(expression, RateExpression):
            periods = int((now - entry.anchor).total_seconds() // expression.seconds)
            return entry.anchor + timedelta(seconds=periods * expression.seconds)
        latest = entry.next_due
        assert latest is not None
        while (following := expression.next_after(latest)) is not None and following <= now:
            latest = following
        return latest

    def _change(self, name: str, entry: Optional[_Entry]) -> None:
        """Set (None: remove) the entry and save; as it was if the save fails."""
        before = self._entries.get(name)
        if entry is None:
            self._entries.pop(name, None)
        else:
            self._entries[name] = entry
        try:
            self._save()
        except Unavailable:
            if before is None:
                self._entries.pop(name, None)
            else:
                self._entries[name] = before
            raise

    def _load(self) -> dict[str, _Entry]:
        if not self._path.exists():
            return {}
        entries = [_Entry.from_dict(v) for v in json.loads(self._path.read_text())["schedules"]]
        return {e.schedule.name: e for e in entries}

    def _save(self) -> None:
        temporary = self._path.with_suffix(".tmp")
        data = json.dumps({"schedules": [self._entries[n].to_dict() for n in sorted(self._entries)]}, indent=1)
        try:
            with open(temporary, "w") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self._path)
        except OSError as e:
            raise Unavailable(f"the local schedules could not be saved to {self._path}: {e.strerror}") from e


__all__ = ["LocalScheduler", "ManualClock", "STATE_FILE", "SystemClock"]
