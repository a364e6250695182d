"""The schedule Lambda's handler: EventBridge Scheduler invokes it with a schedule's Input (a
firing's invocation, see adapters/schedules/eventbridge.py); it calls the registered target, as
the local scheduler does in the local stack."""
from __future__ import annotations

from typing import Any

from chalicelib.entities.schedules import Firing


def run_schedule(event: dict[str, Any], targets: Any) -> Any:
    """Invoke the target ``event`` names through ``targets`` (a ScheduleTargets). A malformed
    event is ``InvalidInput``; what the target raises propagates, so Lambda's retry policy and
    the schedule's dead-letter settings apply."""
    return targets.invoke(Firing.from_invocation(event if isinstance(event, dict) else {}))


__all__ = ["run_schedule"]
