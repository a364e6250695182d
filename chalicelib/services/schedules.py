"""Driving the local scheduler's clock (issue 12): tests of the whole loop on the local stack
move its manual clock through the API, so schedules fire when the test says."""
from __future__ import annotations

from typing import Any

from chalicelib.entities import User
from chalicelib.errors import Conflict, Forbidden
from chalicelib.ports import Scheduler


class SchedulerClockService:
    def __init__(self, scheduler: Scheduler):
        self._scheduler = scheduler

    def advance(self, actor: User, seconds: float) -> dict[str, Any]:
        """Move the scheduler's manual clock forward by ``seconds`` and fire what is then due
        (admins): ``{"now", "fired": [{"schedule", "target", "payload", "time"}]}``. ``Conflict``
        where the clock cannot be moved (the system clock; EventBridge Scheduler on AWS)."""
        if not actor.user_type.is_admin:
            raise Forbidden("only admins can move the scheduler's clock")
        advance = getattr(self._scheduler, "advance", None)  # a DrivableScheduler (ports_schedules.py)
        if advance is None:
            raise Conflict("schedules here are EventBridge Scheduler's: their clock is AWS's")
        fired = advance(seconds)
        return {"now": self._scheduler.now().isoformat(),  # type: ignore[attr-defined]
                "fired": [f.to_invocation() for f in fired]}


__all__ = ["SchedulerClockService"]
