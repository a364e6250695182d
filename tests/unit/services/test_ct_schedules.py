"""Scheduled continuous tests with a data source (issue 12 item 4) on the fakes: the schedule, the
watermark, a firing while a job runs (skipped, recorded), traffic with labels, files of a prefix.
A firing reads no data (it may run where pandas is not: the schedule Lambda): it lists the new
files in a sources manifest, the job's evaluation file, which the worker reads
(tests/unit/worker/test_worker_ct_sources.py); tests/infra/test_lambda_data_steps.py runs this
module with pandas blocked."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chalicelib.capture_format import CapturedQuery, capture_key, capture_record, ground_truth_key, ground_truth_record
from chalicelib.entities.schedules import Firing
from chalicelib.entities.serving import Application
from chalicelib.errors import InvalidInput, NotFound
from chalicelib.services import ct_sources
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
    """A capture file of one query (and a ground-truth file of its label); its key."""
    key = capture_key(w.user.id, "fraud-app", "ep", "AllTraffic", at, at, unique=query_id)
    w.blobs.objects[key] = capture_record(CapturedQuery(query_id, features, 1, at))
    if label is not None:
        w.blobs.objects[ground_truth_key(w.user.id, "fraud-app", at, unique=f"l{query_id}")] = \
            ground_truth_record(query_id, label)
    return key


def handed_over(w, out):  # noqa: F811
    """The sources manifest a STARTED firing wrote, and the message of the job it started."""
    message = w.message(out["job_id"])
    key = out["data"].split("/", 3)[3]
    assert message["eval_key"] == key and key.startswith(f"stress-inputs/{w.user.id}/")
    return json.loads(w.blobs.objects[key]), message


def test_a_schedule_on_traffic_tests_the_queries_since_the_last_run_with_their_labels(w, s):  # noqa: F811
    service, scheduler, instance_id = s
    view = service.set_schedule(w.user, instance_id, "rate(1 hour)", {"app": "fraud-app"})
    assert scheduler.get(schedule_name(instance_id)).target == TARGET and view["watermark"] == w.clock().isoformat()
    start = w.clock()
    capture(w, "q-before", {"x": 9}, start - timedelta(minutes=5))  # answered before the schedule: not tested
    capture(w, "q1", {"x": 1}, start + timedelta(minutes=10), label=0)
    capture(w, "q2", {"x": 2}, start + timedelta(minutes=20))
    out = fire(service, instance_id, start + timedelta(hours=1))
    assert out["status"] == "STARTED" and out["num_files"] == 2 and out["num_label_files"] == 1
    manifest, message = handed_over(w, out)
    assert message["continuous"]["mode"] == "incremental"
    assert message["continuous"]["source_prefixes"] == [f"capture/{w.user.id}/fraud-app/",
                                                        f"ground-truth/{w.user.id}/fraud-app/"]
    # The window, and the instance's timestamp and label columns, for the worker to apply.
    assert manifest["source"] == "traffic" and len(manifest["captures"]) == 2 and len(manifest["labels"]) == 1
    assert (manifest["since"], manifest["until"]) == (start.isoformat(), (start + timedelta(hours=1)).isoformat())
    assert (manifest["timestamp_col"], manifest["label_col"]) == ("ts", "y")
    # The job still runs: the next firing is skipped and recorded, the watermark stays for later.
    skipped = fire(service, instance_id, start + timedelta(hours=2))
    assert skipped["status"] == "SKIPPED" and out["job_id"] in skipped["reason"]
    assert len(w.workflows.started) == 2  # the reference job and the first incremental one only
    w.finish(out["job_id"], [a_bin(1)])
    q3 = capture(w, "q3", {"x": 3}, start + timedelta(hours=1, minutes=30))
    third = fire(service, instance_id, start + timedelta(hours=3))
    assert third["status"] == "STARTED"  # q3's file only: q1's and q2's hour was handed over
    assert handed_over(w, third)[0]["captures"] == [q3]
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
    assert first["status"] == "STARTED" and first["num_files"] == 1
    manifest, message = handed_over(w, first)
    assert manifest["source"] == "files" and manifest["files"] == [prefix + "a.csv"]
    assert message["continuous"]["source_prefixes"] == [prefix]
    w.finish(first["job_id"], [a_bin(2)])
    w.blobs.objects[prefix + "b.parquet"] = b"read by the worker, not here"
    second = fire(service, instance_id, w.clock())
    assert second["status"] == "STARTED" and handed_over(w, second)[0]["files"] == [prefix + "b.parquet"]
    assert service.get_schedule(w.user, instance_id)["num_files_tested"] == 2  # a.csv and b.parquet


def test_a_prefix_of_all_uploads_never_retests_the_schedules_own_upload(w, s):  # noqa: F811
    service, _, instance_id = s
    prefix = f"stress-inputs/{w.user.id}/"  # every upload of the user, the schedule's own among them
    service.set_schedule(w.user, instance_id, "rate(1 hour)", {"s3_prefix": f"s3://{BUCKET}/{prefix}"})
    w.blobs.objects[prefix + "x/a.csv"] = b"x,y,ts\n1,0,2024-01-01T02:00:00Z\n"
    first = fire(service, instance_id, w.clock())
    assert first["status"] == "STARTED"
    w.finish(first["job_id"], [a_bin(2)])
    assert fire(service, instance_id, w.clock())["status"] == "NO_DATA"


def test_a_prefix_that_ends_inside_a_name_hands_over_its_folder(w, s):  # noqa: F811
    service, _, instance_id = s
    folder = f"stress-inputs/{w.user.id}/landing/"
    service.set_schedule(w.user, instance_id, "rate(1 hour)", {"s3_prefix": f"s3://{BUCKET}/{folder}day-"})
    w.blobs.objects[folder + "day-1.csv"] = b"x,y,ts\n1,0,2024-01-01T02:00:00Z\n"
    w.blobs.objects[folder + "night-1.csv"] = b"x,y,ts\n1,0,2024-01-01T02:00:00Z\n"
    out = fire(service, instance_id, w.clock())
    manifest, message = handed_over(w, out)
    assert manifest["files"] == [folder + "day-1.csv"] and message["continuous"]["source_prefixes"] == [folder]


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


class Listing:
    def __init__(self, keys):
        self.keys = keys

    def list_keys(self, prefix):
        return [k for k in self.keys if k.startswith(prefix)]


def test_a_schedule_far_behind_its_traffic_hands_over_the_oldest_whole_hours():
    start = T0.replace(minute=0, second=0, microsecond=0)
    keys = [capture_key("u1", "fraud-app", "ep", "AllTraffic", start + timedelta(hours=h), start, unique=f"{h}-{i}")
            for h in range(4) for i in range(3)]  # 3 files an hour, 4 hours
    label = ground_truth_key("u1", "fraud-app", start, unique="l")
    new = ct_sources.traffic(Listing(keys + [label]), "u1", "fraud-app", start, start + timedelta(hours=4), "ts", "y",
                             max_files=8)  # 1 label file, then 7 capture files: the first 2 hours fit whole
    assert new.manifest["captures"] == keys[:6] and new.manifest["labels"] == [label]
    assert new.manifest["until"] == new.moved["watermark"] == (start + timedelta(hours=2)).isoformat()
    with pytest.raises(InvalidInput, match="more than 2 capture files in the hour"):
        ct_sources.traffic(Listing(keys + [label]), "u1", "fraud-app", start, start + timedelta(hours=4), "ts", "y",
                           max_files=3)


def test_a_query_still_in_a_capture_buffer_at_a_firing_is_tested_at_the_next_one(w):  # noqa: F811
    # A query answered 30 s before a firing may be written up to the capture flush interval
    # later: the firing's window ends that long before it, so the next firing takes the query.
    users, apps = FakeUserStore(), FakeApplicationStore()
    users.add(w.user)
    apps.add(Application(user_id=w.user.id, name="fraud-app", created_at=T0))
    service = CTScheduleService(w.ct, w.instances, FakeScheduler(), w.blobs, w.blobs, users, apps, BUCKET,
                                clock=w.clock, capture_settle_seconds=65)
    job = w.ct.start_continuous_test_from_reference(w.user, w.config())
    w.finish(job["job_id"], [a_bin(0)])
    instance_id = job["ct_instance_id"]
    service.set_schedule(w.user, instance_id, "rate(1 hour)", {"app": "fraud-app"})
    start = w.clock()
    firing = start + timedelta(hours=1)
    capture(w, "q1", {"x": 1}, start + timedelta(minutes=10))
    first = fire(service, instance_id, firing)
    assert first["status"] == "STARTED"
    assert handed_over(w, first)[0]["until"] == (firing - timedelta(seconds=65)).isoformat()
    w.finish(first["job_id"], [a_bin(1)])
    late = capture(w, "q-late", {"x": 2}, firing - timedelta(seconds=30))  # written after the firing
    second = fire(service, instance_id, firing + timedelta(hours=1))
    manifest = handed_over(w, second)[0]
    assert late in manifest["captures"]
    assert manifest["since"] == (firing - timedelta(seconds=65)).isoformat()
