"""The composition root picks the scheduler and event publisher twins by their URIs (wiring_events.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from settings_support import make_settings

from chalicelib.adapters.events.eventbridge import EventBridgePublisher
from chalicelib.adapters.events.local import LocalEventLog
from chalicelib.adapters.schedules.eventbridge import EventBridgeScheduler
from chalicelib.adapters.schedules.local import LocalScheduler, ManualClock, SystemClock
from chalicelib.entities.schedules import Schedule
from chalicelib.services.schedule_targets import ScheduleTargets
from chalicelib.wiring_events import event_publisher, scheduler

from unit.services.fakes import NoAws


def test_local_uris_give_the_local_twins_in_the_named_directories(tmp_path: Path) -> None:
    targets = ScheduleTargets()
    fired = []
    targets.register("t", fired.append)
    settings = make_settings(scheduler_uri=f"local://{tmp_path / 's'}", local_scheduler_clock="manual",
                             events_uri=f"local://{tmp_path / 'e'}")
    local = scheduler(settings, NoAws(), targets)
    assert isinstance(local, LocalScheduler) and isinstance(local.clock, ManualClock)
    local.create(Schedule("s1", "rate(1 minute)", "t"))
    local.clock.advance(60)
    assert [f.schedule for f in local.fire_due()] == ["s1"] and len(fired) == 1
    assert (tmp_path / "s" / "schedules.json").exists()
    assert isinstance(event_publisher(settings, NoAws()), LocalEventLog)
    assert isinstance(scheduler(settings.with_values(local_scheduler_clock="system"), NoAws(), targets).clock,
                      SystemClock)


def test_aws_uris_give_the_aws_twins_without_touching_aws_until_used() -> None:
    settings = make_settings()
    assert isinstance(scheduler(settings, NoAws(), ScheduleTargets()), EventBridgeScheduler)
    assert isinstance(event_publisher(settings, NoAws()), EventBridgePublisher)


@pytest.mark.parametrize("values", [{"scheduler_uri": "cron://"}, {"events_uri": "sns://topic"}])
def test_an_unknown_scheme_is_a_clear_error(values: dict) -> None:
    settings = make_settings(**values)
    with pytest.raises(ValueError, match="KILELE_"):
        scheduler(settings, NoAws(), ScheduleTargets())
        event_publisher(settings, NoAws())
