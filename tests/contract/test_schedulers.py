"""The scheduler contract: one suite run against both twins of :class:`chalicelib.ports.Scheduler`.

- **eventbridge**: :class:`EventBridgeScheduler` against moto's EventBridge Scheduler. moto stores
  schedules (create/get/update/delete/list, ConflictException, ResourceNotFoundException) but
  validates no expression and never fires one. So the suite checks what the twin stores, and, for
  a firing, does what EventBridge Scheduler would do with a stored schedule: it takes the
  schedule's Target Input from moto, puts the scheduled time in for
  ``<aws.scheduler.scheduled-time>`` and invokes the schedule Lambda's handler with it.
- **local**: :class:`LocalScheduler`, firing by a :class:`ManualClock` the test advances.

The contract: schedules round-trip with every field; names are unique (Conflict), a missing one is
NotFound to update or delete and None to get; a bad expression is InvalidInput and creates
nothing; a new scheduler on the same group or directory has the schedules; a firing reaches the
target registered under the schedule's target name with the schedule's name and payload and the
time it was due.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.schedules.eventbridge import SCHEDULED_TIME, EventBridgeScheduler
from chalicelib.adapters.schedules.local import STATE_FILE, LocalScheduler, ManualClock
from chalicelib.entities.schedules import Firing, Schedule
from chalicelib.errors import Conflict, InvalidInput, NotFound
from chalicelib.services.schedule_targets import ScheduleTargets
from chalicelib.workflows.schedule_handler import run_schedule

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
REGION = "us-east-1"
GROUP = "kilele-test-schedules"
TARGET_ARN = "arn:aws:lambda:us-east-1:123456789012:function:kilele-test-run_schedule"
ROLE_ARN = "arn:aws:iam::123456789012:role/kilele-test-scheduler"


class Recorder:
    def __init__(self) -> None:
        self.firings: list[Firing] = []

    def __call__(self, firing: Firing) -> None:
        self.firings.append(firing)


class EventBridgeTwin:
    name = "eventbridge"

    def __init__(self, targets: ScheduleTargets) -> None:
        self.targets = targets
        self.client = boto3.client("scheduler", region_name=REGION)
        self.client.create_schedule_group(Name=GROUP)

    def scheduler(self) -> EventBridgeScheduler:
        return EventBridgeScheduler(self.client, GROUP, TARGET_ARN, ROLE_ARN)

    def fire(self, name: str, due: datetime) -> None:
        """What EventBridge Scheduler does at ``due``: invoke the target with the Input, time filled in."""
        stored = self.client.get_schedule(Name=name, GroupName=GROUP)
        assert stored["Target"]["Arn"] == TARGET_ARN and stored["Target"]["RoleArn"] == ROLE_ARN
        assert stored["ScheduleExpressionTimezone"] == "UTC" and stored["FlexibleTimeWindow"] == {"Mode": "OFF"}
        if stored["State"] != "ENABLED":
            return
        event = json.loads(stored["Target"]["Input"].replace(SCHEDULED_TIME, due.strftime("%Y-%m-%dT%H:%M:%SZ")))
        run_schedule(event, self.targets)


class LocalTwin:
    name = "local"

    def __init__(self, directory: Path, targets: ScheduleTargets) -> None:
        self.directory = directory
        self.targets = targets
        self.clock = ManualClock(T0)

    def scheduler(self) -> LocalScheduler:
        return LocalScheduler(self.directory, self.targets, self.clock)

    def fire(self, name: str, due: datetime) -> None:
        self.clock.advance(max(0.0, (due - self.clock.now()).total_seconds()))
        self.scheduler().fire_due()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def targets(recorder: Recorder) -> ScheduleTargets:
    registry = ScheduleTargets()
    registry.register("run_incremental_continuous_test", recorder)
    return registry


@pytest.fixture(params=["eventbridge", "local"])
def twin(request: pytest.FixtureRequest, tmp_path: Path, targets: ScheduleTargets) -> Iterator[Any]:
    if request.param == "local":
        yield LocalTwin(tmp_path, targets)
        return
    with mock_aws():
        yield EventBridgeTwin(targets)


def hourly(name: str = "ct-1", **changes: Any) -> Schedule:
    values = {"expression": "rate(1 hour)", "target": "run_incremental_continuous_test",
              "payload": {"ct_instance_id": "ct-1", "source": {"s3_prefix": "s3://b/new/"}}, "description": "CT of app a"}
    values.update(changes)
    return Schedule(name, **values)


def test_a_schedule_round_trips_with_every_field(twin: Any) -> None:
    scheduler = twin.scheduler()
    scheduler.create(hourly())
    scheduler.create(hourly("a-daily", expression="cron(0 6 * * ? *)", enabled=False, payload={}))
    assert scheduler.get("ct-1") == hourly()
    assert scheduler.get("a-daily") == hourly("a-daily", expression="cron(0 6 * * ? *)", enabled=False, payload={})
    assert [s.name for s in scheduler.list()] == ["a-daily", "ct-1"]
    assert scheduler.get("nope") is None


def test_names_are_unique_and_a_missing_schedule_is_not_found(twin: Any) -> None:
    scheduler = twin.scheduler()
    scheduler.create(hourly())
    with pytest.raises(Conflict):
        scheduler.create(hourly(expression="rate(5 minutes)"))
    assert scheduler.get("ct-1").expression == "rate(1 hour)"
    with pytest.raises(NotFound):
        scheduler.update(hourly("other"))
    with pytest.raises(NotFound):
        scheduler.delete("other")


def test_update_and_delete(twin: Any) -> None:
    scheduler = twin.scheduler()
    scheduler.create(hourly())
    changed = hourly(expression="cron(0/30 * * * ? *)", payload={"ct_instance_id": "ct-2"}, enabled=False)
    scheduler.update(changed)
    assert scheduler.get("ct-1") == changed
    scheduler.delete("ct-1")
    assert scheduler.get("ct-1") is None and scheduler.list() == []


@pytest.mark.parametrize("bad", [
    hourly(expression="rate(5 minute)"), hourly(expression="cron(0 10 * * * *)"), hourly(name="bad name"),
    hourly(target="run tests"), hourly(payload={"blob": "x" * 7000}),
])
def test_a_bad_schedule_is_invalid_input_and_creates_nothing(twin: Any, bad: Schedule) -> None:
    scheduler = twin.scheduler()
    with pytest.raises(InvalidInput):
        scheduler.create(bad)
    assert scheduler.list() == []


def test_a_new_scheduler_has_the_schedules(twin: Any) -> None:
    twin.scheduler().create(hourly())
    assert twin.scheduler().get("ct-1") == hourly()


def test_a_firing_reaches_the_registered_target_with_name_payload_and_due_time(twin: Any, recorder: Recorder) -> None:
    twin.scheduler().create(hourly())
    due = T0 + timedelta(hours=1)
    twin.fire("ct-1", due)
    [firing] = recorder.firings
    assert firing == Firing("ct-1", "run_incremental_continuous_test", hourly().payload, due)


def test_a_disabled_schedule_does_not_fire(twin: Any, recorder: Recorder) -> None:
    twin.scheduler().create(hourly(enabled=False))
    twin.fire("ct-1", T0 + timedelta(hours=1))
    assert recorder.firings == []


# -- the local twin's own: its clock, catching up, restarts, failing targets ----------------------


def local(tmp_path: Path, targets: ScheduleTargets, clock: ManualClock) -> LocalScheduler:
    return LocalScheduler(tmp_path, targets, clock)


def test_local_fires_each_due_time_once_as_the_clock_moves(tmp_path: Path, targets: ScheduleTargets,
                                                            recorder: Recorder) -> None:
    clock = ManualClock(T0)
    scheduler = local(tmp_path, targets, clock)
    scheduler.create(hourly(expression="rate(15 minutes)"))
    scheduler.create(hourly("cron", expression="cron(0 11 * * ? *)"))
    clock.advance(14 * 60)
    assert scheduler.fire_due() == []
    clock.advance(60)
    assert [f.time for f in scheduler.fire_due()] == [T0 + timedelta(minutes=15)]
    assert scheduler.fire_due() == []  # the same due time never twice
    clock.advance(45 * 60)
    # 10:30, 10:45 and 11:00 were due for ct-1: one firing, for the latest.
    assert sorted((f.schedule, f.time) for f in scheduler.fire_due()) == [
        ("cron", T0 + timedelta(hours=1)), ("ct-1", T0 + timedelta(hours=1))]
    assert scheduler.status("ct-1")["next_due"] == (T0 + timedelta(minutes=75)).isoformat()


def test_local_catches_up_a_missed_day_with_one_run_after_a_restart(tmp_path: Path, targets: ScheduleTargets,
                                                                    recorder: Recorder) -> None:
    clock = ManualClock(T0)
    local(tmp_path, targets, clock).create(hourly())
    clock.advance(24 * 3600 + 60)  # the stack was stopped for a day
    restarted = local(tmp_path, targets, clock)
    assert [f.time for f in restarted.fire_due()] == [T0 + timedelta(hours=24)]  # the latest of the 24 missed
    assert restarted.fire_due() == []
    assert restarted.status("ct-1")["next_due"] == (T0 + timedelta(hours=25)).isoformat()
    again = local(tmp_path, targets, clock)  # a restart right after: nothing fires twice
    assert again.fire_due() == []
    assert len(recorder.firings) == 1


def test_local_records_a_failing_or_unknown_target_and_fires_the_others(tmp_path: Path, targets: ScheduleTargets,
                                                                        recorder: Recorder) -> None:
    def broken(firing: Firing) -> None:
        raise RuntimeError("the CT instance is gone")

    targets.register("broken", broken)
    clock = ManualClock(T0)
    scheduler = local(tmp_path, targets, clock)
    for schedule in (hourly("a", target="broken"), hourly("b", target="nobody_registered_this"), hourly("c")):
        scheduler.create(schedule)
    clock.advance(3600)
    assert len(scheduler.fire_due()) == 3
    assert [f.schedule for f in recorder.firings] == ["c"]
    assert scheduler.status("a")["last_error"] == "RuntimeError: the CT instance is gone"
    assert "nobody_registered_this" in scheduler.status("b")["last_error"]
    assert scheduler.status("c")["last_error"] is None
    assert local(tmp_path, targets, clock).status("a")["last_error"]  # kept across a restart


def test_local_state_is_one_json_file_rewritten_whole(tmp_path: Path, targets: ScheduleTargets) -> None:
    local(tmp_path, targets, ManualClock(T0)).create(hourly())
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert [entry["schedule"]["name"] for entry in saved["schedules"]] == ["ct-1"]
    assert not list(tmp_path.glob("*.tmp"))


def test_the_schedule_lambda_refuses_an_event_that_is_not_an_invocation(targets: ScheduleTargets) -> None:
    with pytest.raises(InvalidInput):
        run_schedule({"source": "aws.events"}, targets)


def test_local_advance_moves_a_manual_clock_and_fires_what_is_due(tmp_path: Path, targets: ScheduleTargets,
                                                                  recorder: Recorder) -> None:
    scheduler = local(tmp_path, targets, ManualClock(T0))
    scheduler.create(hourly())
    assert scheduler.advance(1800) == [] and scheduler.now() == T0 + timedelta(minutes=30)
    [firing] = scheduler.advance(1800)
    assert firing.time == T0 + timedelta(hours=1) and recorder.firings == [firing]


def test_local_advance_on_the_system_clock_is_a_conflict(tmp_path: Path, targets: ScheduleTargets) -> None:
    with pytest.raises(Conflict):
        LocalScheduler(tmp_path, targets).advance(60)
