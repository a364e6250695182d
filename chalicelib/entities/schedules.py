"""Schedules (issue 12): a named expression (EventBridge Scheduler's ``rate(...)``/``cron(...)``,
UTC) that invokes a target -- a callable registered by name, with a JSON payload -- while enabled."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.errors import InvalidInput
from chalicelib.schedule_expressions import Expression, parse

# EventBridge Scheduler's own limits: a schedule name, a target's Input (the payload travels in it).
_NAME = re.compile(r"^[0-9a-zA-Z_.-]{1,64}$")
_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_PAYLOAD_CHARS = 6000  # of Input's 8192, the rest for the schedule's name, target and time


@dataclass(frozen=True)
class Schedule:
    """``target``: the name a callable is registered under (``ScheduleTargets``); ``payload``: the
    JSON object it is given at each firing."""

    name: str
    expression: str
    target: str
    payload: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    description: str = ""

    def parsed(self) -> Expression:
        return parse(self.expression)

    def validate(self) -> "Schedule":
        """The schedule itself, or ``InvalidInput`` saying which field is wrong (before any twin sees it)."""
        if not _NAME.match(self.name or ""):
            raise InvalidInput("a schedule name has 1-64 letters, digits, '.', '_' or '-'")
        if not _TARGET.match(self.target or ""):
            raise InvalidInput("a schedule target is the name of a registered target (an identifier)")
        self.parsed()
        if not isinstance(self.payload, dict):
            raise InvalidInput("a schedule's payload is a JSON object")
        try:
            size = len(json.dumps(self.payload, separators=(",", ":")))
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"a schedule's payload must be JSON: {e}") from e
        if size > MAX_PAYLOAD_CHARS:
            raise InvalidInput(f"a schedule's payload is {size} characters of JSON; the limit is {MAX_PAYLOAD_CHARS}")
        if len(self.description) > 512:
            raise InvalidInput("a schedule's description has at most 512 characters")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "expression": self.expression, "target": self.target, "payload": self.payload,
                "enabled": self.enabled, "description": self.description}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "Schedule":
        return cls(value["name"], value["expression"], value["target"], dict(value.get("payload") or {}),
                   bool(value.get("enabled", True)), value.get("description") or "")


@dataclass(frozen=True)
class Firing:
    """One firing of a schedule, as its target callable receives it: ``time`` is when it was due
    (EventBridge Scheduler's scheduled time; locally the due time, even when it fires late)."""

    schedule: str
    target: str
    payload: dict[str, Any]
    time: datetime

    def to_invocation(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "target": self.target, "payload": self.payload,
                "time": self.time.isoformat()}

    @classmethod
    def from_invocation(cls, value: dict[str, Any]) -> "Firing":
        """The firing an invocation describes (the AWS target Lambda's event; ``InvalidInput`` if malformed)."""
        try:
            time = datetime.fromisoformat(str(value["time"]).replace("Z", "+00:00"))
            return cls(str(value["schedule"]), str(value["target"]), dict(value.get("payload") or {}), time)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"not a schedule invocation: {e}") from e


__all__ = ["Firing", "MAX_PAYLOAD_CHARS", "Schedule"]
