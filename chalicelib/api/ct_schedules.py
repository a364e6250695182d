"""Schedules of CT instances with a data source (issue 12 item 4; docs/continuous-tests.md)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_loop import CTScheduleOut, RemovedOut, SetCTScheduleRequest
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/ct-instances/{ct_instance_id}/schedule", "PUT",
          "Run an incremental continuous test on a schedule over the data that arrived since the last run",
          body=SetCTScheduleRequest, response=CTScheduleOut)
def set_ct_schedule(call: Call, ct_instance_id: str) -> dict:
    b = call.body
    return services().ct_schedules.set_schedule(call.user, ct_instance_id, b.expression,
                                                b.source.model_dump())


@endpoint(bp, "/ct-instances/{ct_instance_id}/schedule", "GET",
          "The CT instance's schedule, data source, watermark and recent runs (404: none)", response=CTScheduleOut)
def get_ct_schedule(call: Call, ct_instance_id: str) -> dict:
    return services().ct_schedules.get_schedule(call.user, ct_instance_id)


@endpoint(bp, "/ct-instances/{ct_instance_id}/schedule", "DELETE", "Remove the CT instance's schedule",
          response=RemovedOut)
def remove_ct_schedule(call: Call, ct_instance_id: str) -> dict:
    services().ct_schedules.remove_schedule(call.user, ct_instance_id)
    return {"ct_instance_id": ct_instance_id, "removed": True}
