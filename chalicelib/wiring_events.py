"""The composition root's section for events and schedules (kept apart so wiring.py stays
short): which event publisher ``events_uri`` and which scheduler ``scheduler_uri`` name, made
from the settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from chalicelib import resources
from chalicelib.settings import Settings
from chalicelib.wiring_runtimes import default_work_dir, scheme_of


def event_publisher(settings: Settings, aws: Any) -> Any:
    """EventBridge on the stack's bus (``eventbridge://[bus]``) or the local event log (``local://<dir>``)."""
    scheme, rest = scheme_of(settings.events_uri, "KILELE_EVENTS_URI", ("eventbridge", "local"))
    if scheme == "local":
        from chalicelib.adapters.events.local import LocalEventLog

        return LocalEventLog(Path(rest) if rest else default_work_dir("events"))
    from chalicelib.adapters.events.eventbridge import EventBridgePublisher

    # Clients made on first use: most functions build every service and publish nothing.
    return EventBridgePublisher(events_bus(settings), _LazyClient(aws, "events"),
                                _LazyClient(aws, "logs"), settings.events_log_group or events_log_group(settings))


def scheduler(settings: Settings, aws: Any, targets: Any) -> Any:
    """EventBridge Scheduler in the stack's group (``eventbridge://[group]``) or the local scheduler
    (``local://<dir>``, firing through ``targets`` by the clock ``local_scheduler_clock`` names)."""
    scheme, rest = scheme_of(settings.scheduler_uri, "KILELE_SCHEDULER_URI", ("eventbridge", "local"))
    if scheme == "local":
        from chalicelib.adapters.schedules.local import LocalScheduler, ManualClock, SystemClock

        clock = ManualClock() if settings.local_scheduler_clock == "manual" else SystemClock()
        return LocalScheduler(Path(rest) if rest else default_work_dir("schedules"), targets, clock)
    from chalicelib.adapters.schedules.eventbridge import EventBridgeScheduler

    return EventBridgeScheduler(_LazyClient(aws, "scheduler"), rest or settings.resource_name(resources.SCHEDULE_GROUP),
                                settings.schedule_target_arn, settings.scheduler_role_arn)


def events_bus(settings: Settings) -> str:
    """The event bus ``eventbridge://[bus]`` names: the stack's own when no name is given."""
    _, rest = scheme_of(settings.events_uri, "KILELE_EVENTS_URI", ("eventbridge", "local"))
    return rest or settings.resource_name(resources.EVENT_BUS)


def events_log_group(settings: Settings) -> str:
    """The log group a rule on the bus delivers Kilele events to, unless ``events_log_group`` names
    another (infra creates it under this name; /aws/events/ is where EventBridge's own live)."""
    return f"/aws/events/{settings.resource_name(resources.EVENT_BUS)}"


class _LazyClient:
    """``aws.client(service)``, made when first called (a client costs ~50 ms of a cold start)."""

    def __init__(self, aws: Any, service: str):
        self._aws = aws
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._aws.client(self._service), name)


__all__ = ["event_publisher", "events_bus", "events_log_group", "scheduler"]
