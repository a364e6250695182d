"""The AWS scheduler: EventBridge Scheduler schedules in the stack's schedule group.

Each schedule's target is the one schedule Lambda (``run_schedule`` in app.py), invoked with the
role infra makes for it (infra/kilele_infra/schedules.py); its Input is the firing's invocation
(:meth:`Firing.to_invocation`), with EventBridge Scheduler's ``<aws.scheduler.scheduled-time>``
as its time, and the Lambda hands it to the same :class:`ScheduleTargets` the local twin calls.
Expressions are in UTC with no flexible window. Its local twin is ``local.py`` beside this file;
both are under tests/contract.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.entities.schedules import Schedule
from chalicelib.errors import Conflict, InvalidInput, NotFound, Unavailable

#: Replaced by EventBridge Scheduler, in the Input, with the time the firing was due.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class EventBridgeScheduler:
    """Schedules in ``group``, each invoking ``target_arn`` (the schedule Lambda) as ``role_arn``."""

    def __init__(self, scheduler: Any, group: str, target_arn: str, role_arn: str):
        self._client = scheduler
        self._group = group
        self._target_arn = target_arn
        self._role_arn = role_arn

    def _request(self, schedule: Schedule) -> dict[str, Any]:
        schedule.validate()
        invocation = {"schedule": schedule.name, "target": schedule.target, "payload": schedule.payload,
                      "time": SCHEDULED_TIME}
        return {
            "Name": schedule.name, "GroupName": self._group, "ScheduleExpression": schedule.expression,
            "ScheduleExpressionTimezone": "UTC", "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED" if schedule.enabled else "DISABLED", "Description": schedule.description,
            "Target": {"Arn": self._target_arn, "RoleArn": self._role_arn,
                       "Input": json.dumps(invocation, separators=(",", ":"))},
        }

    def _call(self, what: str, method: str, **request: Any) -> Any:
        try:
            return getattr(self._client, method)(**request)
        except ClientError as e:
            code = _code(e)
            if code == "ConflictException":
                raise Conflict(f"a schedule named {request.get('Name')!r} exists") from e
            if code == "ResourceNotFoundException":
                raise NotFound(f"no schedule named {request.get('Name')!r} in group {self._group!r}") from e
            if code == "ValidationException":
                raise InvalidInput(f"EventBridge Scheduler refused the schedule: "
                                   f"{e.response.get('Error', {}).get('Message', '')}") from e
            raise Unavailable(f"EventBridge Scheduler refused to {what} ({code})") from e
        except BotoCoreError as e:
            raise Unavailable(f"EventBridge Scheduler could not be reached to {what}") from e

    def create(self, schedule: Schedule) -> None:
        self._call("create the schedule", "create_schedule", **self._request(schedule))

    def update(self, schedule: Schedule) -> None:
        self._call("update the schedule", "update_schedule", **self._request(schedule))

    def delete(self, name: str) -> None:
        self._call("delete the schedule", "delete_schedule", Name=name, GroupName=self._group)

    def get(self, name: str) -> Optional[Schedule]:
        try:
            answer = self._call("read the schedule", "get_schedule", Name=name, GroupName=self._group)
        except NotFound:
            return None
        return self._schedule(answer)

    def list(self) -> list[Schedule]:
        names: list[str] = []
        request: dict[str, Any] = {"GroupName": self._group}
        while True:
            answer = self._call("list the schedules", "list_schedules", **request)
            names.extend(item["Name"] for item in answer.get("Schedules", []))
            if not answer.get("NextToken"):
                break
            request["NextToken"] = answer["NextToken"]
        schedules = (self.get(name) for name in sorted(names))  # the listing has no Input: read each
        return [s for s in schedules if s is not None]

    @staticmethod
    def _schedule(answer: dict[str, Any]) -> Schedule:
        invocation = json.loads(answer["Target"].get("Input") or "{}")
        return Schedule(answer["Name"], answer["ScheduleExpression"], invocation.get("target", ""),
                        dict(invocation.get("payload") or {}), answer.get("State") != "DISABLED",
                        answer.get("Description") or "")


__all__ = ["EventBridgeScheduler", "SCHEDULED_TIME"]
