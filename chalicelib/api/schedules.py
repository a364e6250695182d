"""The local scheduler's manual clock (issue 12): tests of the local stack move it to fire schedules."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_events import AdvanceSchedulerClockRequest, SchedulerClockOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/local/scheduler/advance", "POST", "Move the local scheduler's manual clock forward and fire what "
          "is then due (admins; a local stack started with KILELE_LOCAL_SCHEDULER_CLOCK=manual)",
          body=AdvanceSchedulerClockRequest, response=SchedulerClockOut)
def advance_scheduler_clock(call: Call) -> dict:
    return services().scheduler_clock.advance(call.user, call.body.seconds)
