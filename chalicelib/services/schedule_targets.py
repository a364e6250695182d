"""What a schedule's firing invokes: callables registered by name (issue 12).

The composition root registers each target (the continuous tests register
``run_incremental_continuous_test``); the local scheduler calls :meth:`ScheduleTargets.invoke`
in the stack's process, and on AWS EventBridge Scheduler invokes the target Lambda
(``run_schedule`` in app.py) with the same invocation as its Input, which calls the same method.
So a target behaves the same on both.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from chalicelib.entities.schedules import Firing
from chalicelib.errors import NotFound

log = logging.getLogger("kilele.schedules")

Target = Callable[[Firing], Any]


class ScheduleTargets:
    """The registry of targets by name."""

    def __init__(self) -> None:
        self._targets: dict[str, Target] = {}
        self._lock = threading.Lock()

    def register(self, name: str, target: Target) -> None:
        """Make ``target(firing)`` what schedules naming ``name`` invoke (a later registration replaces it)."""
        with self._lock:
            self._targets[name] = target

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._targets)

    def invoke(self, firing: Firing) -> Any:
        """Call the firing's target; ``NotFound`` if no target of that name is registered. What the
        target raises propagates (the caller records it: the local scheduler, or Lambda's retries)."""
        with self._lock:
            target = self._targets.get(firing.target)
        if target is None:
            raise NotFound(f"no schedule target {firing.target!r} is registered (known: {', '.join(self.names()) or 'none'})")
        log.info("schedule %s fires %s (due %s)", firing.schedule, firing.target, firing.time.isoformat())
        return target(firing)


__all__ = ["ScheduleTargets", "Target"]
