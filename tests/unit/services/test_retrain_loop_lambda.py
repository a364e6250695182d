"""The loop where pandas is missing (the API and workflow Lambdas on AWS): a retrain on
``labelled_captured_traffic`` lists the app's capture and ground-truth files, starts the job that
builds its dataset (the worker's, on AWS) and, once the job's verdict is recorded, starts the
train job on it -- all without reading a data file here.
tests/infra/test_lambda_data_steps.py runs this module in a process that cannot import pandas."""
from __future__ import annotations

import json

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
