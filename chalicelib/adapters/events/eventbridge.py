"""The AWS event publisher: EventBridge ``PutEvents`` on the stack's event bus.

Users route these events with ordinary EventBridge rules (infra/ ships one to an SNS topic). To
list them (``GET /events``) the stack also has a rule that delivers every Kilele event on the bus
to a CloudWatch Logs log group (infra/kilele_infra/events.py); ``list_events`` reads that group.
Its local twin is ``local.py`` beside this file; both are under tests/contract.

A page token is ``<microseconds since the epoch>.<event id>`` of the last event a page held:
events are ordered by their ``detail.time`` (then id), and the log group is read from that time
on (an event is delivered after it happened, so nothing later is stored earlier). Events of the
same microsecond are ordered by event id, not necessarily as published; no page loses or repeats one.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Optional

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.entities.events import EVENT_SOURCE, EventFilters, KileleEvent
from chalicelib.errors import InvalidInput, Unavailable
from chalicelib.ports_events import EVENT_PAGE_TOKEN_PATTERN

_TOKEN = re.compile(EVENT_PAGE_TOKEN_PATTERN)
#: The most log events one listing reads (a listing past them says so in its log, see list_events).
MAX_SCANNED = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


class EventBridgePublisher:
    """Publishes to the bus ``bus_name``; lists from ``log_group`` (None: listing is unavailable)."""

    def __init__(self, bus_name: str, events: Any, logs: Optional[Any] = None, log_group: Optional[str] = None):
        self._bus = bus_name
        self._events = events
        self._logs = logs
        self._log_group = log_group

    def publish(self, event: KileleEvent) -> str:
        entry = {"Source": EVENT_SOURCE, "DetailType": event.detail_type, "Detail": json.dumps(event.detail_json()),
                 "EventBusName": self._bus, "Time": event.detail.time}
        try:
            answer = self._events.put_events(Entries=[entry])
        except ClientError as e:
            raise Unavailable(f"EventBridge refused the event ({_code(e)})") from e
        except BotoCoreError as e:
            raise Unavailable("EventBridge could not be reached to publish the event") from e
        result = answer["Entries"][0]
        if answer.get("FailedEntryCount") or "EventId" not in result:
            raise Unavailable(f"EventBridge did not take the event ({result.get('ErrorCode', 'unknown error')}: "
                              f"{result.get('ErrorMessage', '')})")
        return result["EventId"]

    def list_events(self, filters: EventFilters, page_token: Optional[str] = None,
                    limit: int = 100) -> tuple[list[KileleEvent], Optional[str]]:
        after: tuple[int, str] = (-1, "")
        if page_token is not None:
            match = _TOKEN.fullmatch(page_token)
            if not match:
                raise InvalidInput("page_token is not one this event listing gave")
            micros, _, event_id = page_token.partition(".")
            after = (int(micros), event_id)
        if self._logs is None or not self._log_group:
            raise Unavailable("events are published to EventBridge but no log group is configured to list them")
        since = max(after[0], _micros(filters.since) if filters.since else 0)
        found: list[tuple[tuple[int, str], KileleEvent]] = []
        for message in self._scan(start_millis=since // 1000):
            event = self._parse(message)
            if event is None:
                continue
            key = (_micros(event.detail.time), event.event_id or "")
            if key > after and filters.matches(event):
                found.append((key, event))
        found.sort(key=lambda pair: pair[0])
        page = found[:limit]
        if page:
            last = page[-1][0]
            token: Optional[str] = f"{last[0]}.{last[1]}"
        else:
            token = page_token
        return [event for _, event in page], token

    def _scan(self, start_millis: int) -> Any:
        arguments: dict[str, Any] = {"logGroupName": self._log_group, "startTime": start_millis}
        scanned = 0
        while True:
            try:
                answer = self._logs.filter_log_events(**arguments)
            except ClientError as e:
                if _code(e) == "ResourceNotFoundException":
                    raise Unavailable(f"the events log group {self._log_group!r} does not exist") from e
                raise Unavailable(f"CloudWatch Logs refused to list the events ({_code(e)})") from e
            except BotoCoreError as e:
                raise Unavailable("CloudWatch Logs could not be reached to list the events") from e
            for item in answer.get("events", []):
                scanned += 1
                yield item["message"]
            token = answer.get("nextToken")
            if not token or scanned >= MAX_SCANNED:
                return
            arguments["nextToken"] = token

    @staticmethod
    def _parse(message: str) -> Optional[KileleEvent]:
        """The Kilele event an EventBridge delivery holds (None for anything else in the group)."""
        try:
            value = json.loads(message)
            if value.get("source") != EVENT_SOURCE:
                return None
            return KileleEvent.from_dict(value)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


__all__ = ["EventBridgePublisher", "MAX_SCANNED"]
