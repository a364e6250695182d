"""The ports of schedules: the scheduler and the clock its local twin fires by.

A section of :mod:`chalicelib.ports` kept in its own module (ports.py re-exports every name).
The scheduler has an AWS twin (EventBridge Scheduler, ``adapters/schedules/eventbridge.py``) and a
local twin (fires in the local stack's process, ``adapters/schedules/local.py``), both under
``tests/contract/test_schedulers.py``. What a firing invokes is a callable registered by name in
:class:`chalicelib.services.schedule_targets.ScheduleTargets` (on AWS, through the target Lambda).
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional, Protocol

from chalicelib.entities.schedules import Firing, Schedule


class Scheduler(Protocol):
    """Named schedules. Expressions are validated before the twin sees them (``InvalidInput``);
    the backing service failing is ``errors.Unavailable``."""

    def create(self, schedule: Schedule) -> None:
        """Add ``schedule``; ``errors.Conflict`` if one of its name exists."""

    def update(self, schedule: Schedule) -> None:
        """Replace the schedule of that name (expression, target, payload, enabled); ``errors.NotFound`` if none."""

    def delete(self, name: str) -> None:
        """Remove the schedule; ``errors.NotFound`` if there is none."""

    def get(self, name: str) -> Optional[Schedule]:
        """The schedule of that name, or None."""

    def list(self) -> list[Schedule]:
        """Every schedule, in name order."""


class DrivableScheduler(Protocol):
    """A scheduler whose clock a test moves (the local twin on a manual clock)."""

    def advance(self, seconds: float) -> list[Firing]:
        """Move the clock forward by ``seconds`` and fire what is then due; ``errors.Conflict`` if
        the clock cannot be moved (the system clock, EventBridge Scheduler)."""

    def fire_due(self) -> list[Firing]:
        """Fire each enabled schedule that is due, once; the firings made."""

    def now(self) -> datetime:
        """What time its clock says it is."""


class SchedulerClock(Protocol):
    """What time the local scheduler thinks it is (a test drives a manual one: ``advance``)."""

    def now(self) -> datetime: ...


__all__ = ["DrivableScheduler", "Scheduler", "SchedulerClock"]
