"""Job state changes are published by the record stores' one decorator (services/job_events.py):
after a write that succeeded, with the previous status, the reason and the owner; never for a
write that lost its race or changed nothing; and a publisher that fails never fails the write."""
from __future__ import annotations

import logging
from datetime import timedelta

from chalicelib.entities import Task, TrainJob, TrainJobStatus
from chalicelib.entities.events import EventKind
from chalicelib.entities.stress import StressTestJob, StressTestStatus
from chalicelib.errors import Unavailable
from chalicelib.services.job_events import JobEvents, publishing_stores

from unit.services.fakes import T0, FakeClock, FakeStressTestJobStore, FakeTrainJobStore
from unit.services.fakes_events import FakeEventPublisher


def train_job(job_id: str = "job-1") -> TrainJob:
    return TrainJob(id=job_id, user_id="user-1", app="iris", app_version=2, task=Task.TABULAR_CLASSIFICATION,
                    train_dataset_id="d1", val_dataset_id="d2", budget={}, model_ids=["m1"], created_at=T0)


def stress_job() -> StressTestJob:
    return StressTestJob(id="st-1", owner_id="user-2", project_id="p-1", name="run", config={}, created_at=T0,
                         expires_at=T0 + timedelta(days=2))


def wrapped(publisher: FakeEventPublisher, clock: FakeClock) -> dict:
    return publishing_stores(JobEvents(publisher), clock, train_jobs=FakeTrainJobStore(),
                             stress_test_jobs=FakeStressTestJobStore())


def test_creation_and_each_status_change_are_published_with_the_previous_status() -> None:
    publisher, clock = FakeEventPublisher(), FakeClock()
    jobs = wrapped(publisher, clock)["train_jobs"]
    jobs.add(train_job())
    assert jobs.set_status("job-1", TrainJobStatus.RUNNING, only_from=(TrainJobStatus.STARTED,))
    clock.now += timedelta(seconds=5)
    assert jobs.set_status("job-1", TrainJobStatus.ERRORED, (TrainJobStatus.STARTED, TrainJobStatus.RUNNING),
                           at=clock.now, error="no worker could be resumed")
    assert publisher.changes() == [("train_job", "job-1", None, "STARTED"),
                                   ("train_job", "job-1", "STARTED", "RUNNING"),
                                   ("train_job", "job-1", "RUNNING", "ERRORED")]
    last = publisher.published[-1]
    assert last.detail_type == "Kilele Train Job State Change"
    assert (last.detail.owner_id, last.detail.app, last.detail.reason) == ("user-1", "iris", "no worker could be resumed")
    assert last.detail.links == {"job": "/train-jobs/iris/2"}
    assert last.detail.time == clock.now


def test_a_write_that_lost_its_race_or_changed_nothing_publishes_nothing() -> None:
    publisher, clock = FakeEventPublisher(), FakeClock()
    jobs = wrapped(publisher, clock)["stress_test_jobs"]
    jobs.add(stress_job())
    publisher.published.clear()
    assert not jobs.set_status("st-1", StressTestStatus.SUCCEEDED, only_from=(StressTestStatus.RUNNING,))
    assert jobs.set_status("st-1", StressTestStatus.PENDING, (StressTestStatus.PENDING, StressTestStatus.RUNNING),
                           progress="queued")
    assert publisher.published == []
    assert jobs.set_status("st-1", StressTestStatus.FAILING, (StressTestStatus.PENDING,), error="engine died")
    [event] = publisher.published
    assert event.detail.kind is EventKind.STRESS_TEST
    assert (event.detail.project_id, event.detail.reason, event.detail.previous_status) == ("p-1", "engine died", "PENDING")


def test_other_calls_reach_the_store_unchanged() -> None:
    publisher, clock = FakeEventPublisher(), FakeClock()
    stores = wrapped(publisher, clock)
    stores["train_jobs"].add(train_job())
    assert stores["train_jobs"].get("job-1").app == "iris"
    assert [j.id for j in stores["train_jobs"].list_all()] == ["job-1"]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_publisher_that_fails_never_fails_the_write_and_is_logged() -> None:
    publisher, clock = FakeEventPublisher(), FakeClock()
    jobs = wrapped(publisher, clock)["train_jobs"]
    jobs.add(train_job())
    publisher.fail_once("publish", Unavailable("EventBridge did not take the event"))
    handler = Lines()  # its own handler: other tests' logging set-up (powertools) may stop propagation
    logging.getLogger("kilele.events").addHandler(handler)
    try:
        assert jobs.set_status("job-1", TrainJobStatus.RUNNING, only_from=(TrainJobStatus.STARTED,))
    finally:
        logging.getLogger("kilele.events").removeHandler(handler)
    assert jobs.get("job-1").status is TrainJobStatus.RUNNING
    [line] = handler.lines
    assert "event not published" in line and "EventBridge did not take the event" in line
    assert jobs.set_status("job-1", TrainJobStatus.STOPPED, only_from=(TrainJobStatus.RUNNING,))
    assert publisher.changes()[-1] == ("train_job", "job-1", "RUNNING", "STOPPED")
