"""The loop where pandas is missing (the API and workflow Lambdas on AWS): a retrain on
``labelled_captured_traffic`` lists the app's capture and ground-truth files, starts the job that
builds its dataset (the worker's, on AWS) and, once the job's verdict is recorded, starts the
train job on it -- all without reading a data file here.
tests/infra/test_lambda_data_steps.py runs this module in a process that cannot import pandas."""
from __future__ import annotations

import json

from chalicelib.adapters.dataset_checks.batch import ended_check, lost_check
from chalicelib.capture_format import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, app_prefix
from chalicelib.services import dataset_builds
from chalicelib.services.dataset_checks import verdict_key
from chalicelib.services.retrain_policies import CAPTURED

from unit.services.test_retrain_loop import _traffic, breach, h, steps  # noqa: F401 - the loop's world


def test_a_captured_traffic_retrain_hands_the_files_to_a_job_and_trains_on_its_verdict(h):  # noqa: F811
    s, f = h.services, h.fakes
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h)
    s.retrain.on_breaches(h.instance, [breach()])  # lists, writes the manifest, dispatches: no pandas
    assert steps(h)[-2:] == ["breach_seen", "dataset_build_started"], s.app_timeline.get(h.owner, "fraud")[-1]
    [dataset_id] = f.dataset_check_dispatcher.queued

    # What the worker's job gets (chalicelib/adapters/dataset_checks/batch.py sends it): the
    # manifest to build from, and the only folders it may read.
    message = s.datasets.check_job.job_message(dataset_id, "bucket")
    folders = [app_prefix(root, h.owner.id, "fraud") + "/" for root in (CAPTURE_PREFIX, GROUND_TRUTH_PREFIX)]
    assert message["source_key"] == dataset_builds.file_key(dataset_id)
    assert message["build"] == {"manifest_key": dataset_builds.manifest_key(dataset_id), "source_prefixes": folders,
                                "target_column": "target"}
    manifest = json.loads(f.blobs.objects[message["build"]["manifest_key"]])
    assert len(manifest["captures"]) == 3 and len(manifest["labels"]) == 2
    assert all(any(k.startswith(p) for p in folders) for k in manifest["captures"] + manifest["labels"])

    # The worker wrote its verdict; reading the dataset records it and the loop goes on, here too.
    f.blobs.objects[verdict_key(dataset_id)] = json.dumps(
        {"status": "READY", "size_bytes": 40, "stats": {"rows": 2, "target_column": "target"}}).encode()
    assert s.datasets.get(h.owner, dataset_id)["status"] == "READY"
    assert steps(h)[-2:] == ["dataset_built", "retrain_started"]
    assert s.retrain.get_policy(h.owner, "fraud")["retrain"]["app_version"] == 2


def test_a_refusing_verdict_is_a_failed_retrain_with_the_jobs_reason(h):  # noqa: F811
    s, f = h.services, h.fakes
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h)
    s.retrain.on_breaches(h.instance, [breach()])
    [dataset_id] = f.dataset_check_dispatcher.queued
    # A job that died without a verdict (its Batch job FAILED: batch_job_failed records it).
    s.datasets.check_job.job_lost(dataset_id, "OutOfMemoryError: Container killed")
    last = s.app_timeline.get(h.owner, "fraud")[-1]
    assert last["step"] == "retrain_failed" and "OutOfMemoryError" in last["reason"] and dataset_id in last["reason"]


def _batch_detail(dataset_id: str, status: str, **extra) -> dict:
    """A "Batch Job State Change" detail of a dataset check's job, as EventBridge delivers it."""
    return {"status": status, "jobName": f"kilele-dataset-check-{dataset_id}", **extra,
            "container": {"environment": [{"name": "KILELE_DATASET_CHECK",
                                           "value": json.dumps({"dataset_id": dataset_id})}],
                          **({"reason": "OutOfMemoryError"} if status == "FAILED" else {})}}


def test_the_jobs_end_records_its_verdict_and_the_loop_goes_on_at_once(h):  # noqa: F811
    """On AWS: the rule on dataset jobs' ends invokes app.dataset_job_ended (aws_events), which
    parses the event (adapters/dataset_checks/batch.ended_check) and calls job_ended."""
    s, f = h.services, h.fakes
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h)
    s.retrain.on_breaches(h.instance, [breach()])
    [dataset_id] = f.dataset_check_dispatcher.queued
    f.blobs.objects[verdict_key(dataset_id)] = json.dumps(
        {"status": "READY", "size_bytes": 40, "stats": {"rows": 2}}).encode()

    assert ended_check(_batch_detail(dataset_id, "SUCCEEDED")) == (dataset_id, True)
    assert s.datasets.check_job.job_ended(dataset_id, True).status.value == "READY"
    assert steps(h)[-2:] == ["dataset_built", "retrain_started"]
    # The same end delivered again changes nothing.
    s.datasets.check_job.job_ended(dataset_id, True)
    assert steps(h)[-1] == "retrain_started" and len(s.train_jobs.get_train_jobs_of_app(h.owner, "fraud")) == 2


def test_a_failed_job_recorded_elsewhere_first_still_fails_the_retrain_with_why(h):  # noqa: F811
    s, f = h.services, h.fakes
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h)
    s.retrain.on_breaches(h.instance, [breach()])
    [dataset_id] = f.dataset_check_dispatcher.queued
    # batch_job_failed recorded it INVALID, but its listener could not act there (no grants):
    listeners, s.datasets.check_job.listeners = s.datasets.check_job.listeners, []
    dataset_id_, reason = lost_check(_batch_detail(dataset_id, "FAILED", statusReason="Essential container exited"))
    s.datasets.check_job.job_lost(dataset_id_, reason)
    s.datasets.check_job.listeners = listeners
    assert steps(h)[-1] == "dataset_build_started"

    assert ended_check(_batch_detail(dataset_id, "FAILED")) == (dataset_id, False)
    s.datasets.check_job.job_ended(dataset_id, False, reason)
    last = s.app_timeline.get(h.owner, "fraud")[-1]
    assert last["step"] == "retrain_failed" and "Essential container exited (OutOfMemoryError)" in last["reason"]


def test_other_jobs_and_states_are_not_a_dataset_jobs_end():
    assert ended_check({"status": "SUCCEEDED", "container": {"environment": []}}) is None
    assert ended_check(_batch_detail("d1", "RUNNING")) is None


def test_a_build_whose_job_was_lost_fails_at_the_next_breach_which_builds_another(h):  # noqa: F811
    s, f = h.services, h.fakes
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h)
    s.retrain.on_breaches(h.instance, [breach()])
    [lost] = f.dataset_check_dispatcher.queued
    f.clock.advance(seconds=h.settings.dataset_check_timeout_seconds + 1)  # no verdict, no end event

    s.retrain.on_breaches(h.instance, [breach()])

    assert steps(h)[-3:] == ["breach_seen", "retrain_failed", "dataset_build_started"]
    failed = s.app_timeline.get(h.owner, "fraud")[-2]
    assert lost in failed["reason"] and "did not end within" in failed["reason"]
    assert "the next breach builds another" in f.datasets.items[lost].error
    assert len(f.dataset_check_dispatcher.queued) == 2
