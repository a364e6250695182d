"""Scheduled continuous tests with a data source (issue 12 item 4) on the fakes: the schedule, the
watermark, a firing while a job runs (skipped, recorded), traffic with labels, files of a prefix."""
from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd
import pytest

from chalicelib.capture_format import CapturedQuery, capture_key, capture_record, ground_truth_key, ground_truth_record
from chalicelib.entities.schedules import Firing
from chalicelib.entities.serving import Application
from chalicelib.errors import InvalidInput, NotFound
from chalicelib.services.ct_schedules import TARGET, CTScheduleService, schedule_name

from unit.services.fakes import T0, FakeApplicationStore, FakeUserStore
from unit.services.fakes_events import FakeScheduler
from unit.services.test_continuous_tests import BUCKET, a_bin, w  # noqa: F401 - the CT world fixture


@pytest.fixture
def s(w):  # noqa: F811
    users, apps, scheduler = FakeUserStore(), FakeApplicationStore(), FakeScheduler()
    users.add(w.user)
    apps.add(Application(user_id=w.user.id, name="fraud-app", created_at=T0))
    service = CTScheduleService(w.ct, w.instances, scheduler, w.blobs, w.blobs, users, apps, BUCKET, clock=w.clock)
    job = w.ct.start_continuous_test_from_reference(w.user, w.config())
    w.finish(job["job_id"], [a_bin(0)])
    return service, scheduler, job["ct_instance_id"]


def fire(service, instance_id, at):
    return service.run(Firing(schedule_name(instance_id), TARGET, {"ct_instance_id": instance_id}, at))


def capture(w, query_id, features, at, label=None):  # noqa: F811
    w.blobs.objects[capture_key(w.user.id, "fraud-app", "ep", "AllTraffic", at, at, unique=query_id)] = \
        capture_record(CapturedQuery(query_id, features, 1, at))
    if label is not None:
        w.blobs.objects[ground_truth_key(w.user.id, "fraud-app", at, unique=f"l{query_id}")] = \
            ground_truth_record(query_id, label)


def test_a_schedule_on_traffic_tests_the_queries_since_the_last_run_with_their_labels(w, s):  # noqa: F811
    service, scheduler, instance_id = s
    view = service.set_schedule(w.user, instance_id, "rate(1 hour)", {"app": "fraud-app"})
    assert scheduler.get(schedule_name(instance_id)).target == TARGET and view["watermark"] == w.clock().isoformat()
    start = w.clock()
    capture(w, "q-before", {"x": 9}, start - timedelta(minutes=5))  # answered before the schedule: not tested
    capture(w, "q1", {"x": 1}, start + timedelta(minutes=10), label=0)
    capture(w, "q2", {"x": 2}, start + timedelta(minutes=20))
    out = fire(service, instance_id, start + timedelta(hours=1))
    assert out["status"] == "STARTED" and out["num_rows"] == 2
    message = w.message(out["job_id"])
    assert message["continuous"]["mode"] == "incremental"
    frame = pd.read_parquet(io.BytesIO(w.blobs.objects[out["data"].split("/", 3)[3]]))
    assert sorted(frame.columns) == ["ts", "x", "y"]  # the instance's timestamp and label columns
    assert frame["x"].tolist() == [1, 2] and frame["y"].iloc[0] == 0 and pd.isna(frame["y"].iloc[1])
    # The job still runs: the next firing is skipped and recorded, the watermark stays for later.
    skipped = fire(service, instance_id, start + timedelta(hours=2))
    assert skipped["status"] == "SKIPPED" and out["job_id"] in skipped["reason"]
    assert len(w.workflows.started) == 2  # the reference job and the first incremental one only
    w.finish(out["job_id"], [a_bin(1)])
    capture(w, "q3", {"x": 3}, start + timedelta(hours=1, minutes=30))
    third = fire(service, instance_id, start + timedelta(hours=3))
    assert third["status"] == "STARTED" and third["num_rows"] == 1  # q3 only: q1, q2 were tested
    runs = service.get_schedule(w.user, instance_id)["runs"]
    assert [r["status"] for r in runs] == ["STARTED", "SKIPPED", "STARTED"]  # newest first


def test_no_new_traffic_is_recorded_and_starts_nothing(w, s):  # noqa: F811
    service, _, instance_id = s
    service.set_schedule(w.user, instance_id, "rate(1 hour)", {"app": "fraud-app"})
    out = fire(service, instance_id, w.clock() + timedelta(hours=1))
    assert out["status"] == "NO_DATA" and len(w.workflows.started) == 1


def test_a_prefix_source_tests_each_new_file_once(w, s):  # noqa: F811
    service, _, instance_id = s
    prefix = f"stress-inputs/{w.user.id}/landing/"
    service.set_schedule(w.user, instance_id, "cron(0 * * * ? *)", {"s3_prefix": f"s3://{BUCKET}/{prefix}"})
    w.blobs.objects[prefix + "a.csv"] = b"x,y,ts\n1,0,2024-01-01T02:00:00Z\n"
    w.blobs.objects[prefix + "notes.txt"] = b"not data"
    first = fire(service, instance_id, w.clock())
    assert first["status"] == "STARTED" and first["num_rows"] == 1
    w.finish(first["job_id"], [a_bin(2)])
    w.blobs.objects[prefix + "b.csv"] = b"x,y,ts\n2,1,2024-01-01T03:00:00Z\n3,0,2024-01-01T03:10:00Z\n"
    second = fire(service, instance_id, w.clock())
    assert second["status"] == "STARTED" and second["num_rows"] == 2
    assert service.get_schedule(w.user, instance_id)["num_files_tested"] == 2  # a.csv and b.csv (the uploads are elsewhere)


def test_a_prefix_of_all_uploads_never_retests_the_schedules_own_upload(w, s):  # noqa: F811
    service, _, instance_id = s
    prefix = f"stress-inputs/{w.user.id}/"  # every upload of the user, the schedule's own among them
    service.set_schedule(w.user, instance_id, "rate(1 hour)", {"s3_prefix": f"s3://{BUCKET}/{prefix}"})
    w.blobs.objects[prefix + "x/a.csv"] = b"x,y,ts\n1,0,2024-01-01T02:00:00Z\n"
    first = fire(service, instance_id, w.clock())
    assert first["status"] == "STARTED"
    w.finish(first["job_id"], [a_bin(2)])
    assert fire(service, instance_id, w.clock())["status"] == "NO_DATA"


def test_an_unreadable_file_fails_the_run_with_why(w, s):  # noqa: F811
    service, _, instance_id = s
    prefix = f"stress-inputs/{w.user.id}/landing/"
    service.set_schedule(w.user, instance_id, "rate(1 hour)", {"s3_prefix": f"s3://{BUCKET}/{prefix}"})
    w.blobs.objects[prefix + "bad.parquet"] = b"not parquet"
    out = fire(service, instance_id, w.clock())
    assert out["status"] == "FAILED" and "bad.parquet is not a readable" in out["reason"]
    assert service.get_schedule(w.user, instance_id)["runs"][0]["status"] == "FAILED"


@pytest.mark.parametrize("source, error, message", [
    ({"app": "nope"}, NotFound, "no app 'nope'"),
    ({"s3_prefix": "s3://other-bucket/x/"}, InvalidInput, "a prefix of your uploads"),
    ({"s3_prefix": f"s3://{BUCKET}/stress-inputs/someone-else/x/"}, InvalidInput, "your uploads"),
    ({"app": "fraud-app", "s3_prefix": "s3://x/"}, InvalidInput, "source:"),
    ("fraud-app", InvalidInput, "source:"),
])
def test_a_bad_source_is_a_clear_error_and_makes_no_schedule(w, s, source, error, message):  # noqa: F811
    service, scheduler, instance_id = s
    with pytest.raises(error, match=message):
        service.set_schedule(w.user, instance_id, "rate(1 hour)", source)
    assert not scheduler.schedules


def test_a_bad_expression_is_a_400_and_removing_forgets_the_schedule(w, s):  # noqa: F811
    service, scheduler, instance_id = s
    with pytest.raises(InvalidInput):
        service.set_schedule(w.user, instance_id, "every hour", {"app": "fraud-app"})
    service.set_schedule(w.user, instance_id, "rate(1 hour)", {"app": "fraud-app"})
    service.set_schedule(w.user, instance_id, "rate(2 hours)", {"app": "fraud-app"})  # replaced, not doubled
    assert scheduler.get(schedule_name(instance_id)).expression == "rate(2 hours)"
    service.remove_schedule(w.user, instance_id)
    assert not scheduler.schedules
    with pytest.raises(NotFound):
        service.get_schedule(w.user, instance_id)
    assert fire(service, instance_id, w.clock())["status"] == "FAILED"  # a firing in flight finds no record


def test_traffic_that_makes_no_table_fails_the_run_with_why(w, s):  # noqa: F811
    service, _, instance_id = s
    service.set_schedule(w.user, instance_id, "rate(1 hour)", {"app": "fraud-app"})
    start = w.clock()
    capture(w, "q1", {"x": 1}, start + timedelta(minutes=1))
    capture(w, "q2", {"x": {"nested": [1, "a"]}}, start + timedelta(minutes=2))  # x: a number, then an object
    out = fire(service, instance_id, start + timedelta(hours=1))
    assert out["status"] == "FAILED" and "one table" in out["reason"], out
    assert service.get_schedule(w.user, instance_id)["watermark"] == start.isoformat()  # not moved: retried later
