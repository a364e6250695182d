"""The dataset-build contract (issue 12 item 6 on AWS): a dataset of labelled captured traffic is
built by its check job, one suite against both twins of the dispatcher as the composition root
builds them (tests/contract/test_dataset_check_dispatch.py's: Batch under moto with the worker's
real entrypoint playing the container, and the local thread).

The contract: ``start_build`` answers PENDING and starts one job; the job ends READY with the
captured queries that have a label (their features, the label as the target column), or INVALID
with the same words on both twins when nothing can be built; either way the check job's listeners
(the retrain loop) hear of it once it is recorded. On Batch the job's end reaches them through
the ``dataset_job_ended`` Lambda, as infra's rule on those jobs' state changes invokes it."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.capture_format import (CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, CapturedQuery, app_prefix, capture_key,
                                       capture_record, ground_truth_key, ground_truth_record)
from chalicelib.entities import Task
from chalicelib.services import dataset_builds

from contract.test_dataset_check_dispatch import ADMIN, BatchTwin, LocalTwin, aws, chalice_client, wait_for  # noqa: F401

AT = datetime(2026, 12, 1, 3, tzinfo=timezone.utc)
FOLDERS = [app_prefix(root, ADMIN.id, "fraud") + "/" for root in (CAPTURE_PREFIX, GROUND_TRUTH_PREFIX)]


@pytest.fixture(params=["batch", "local"])
def twin(request, aws, tmp_path):  # noqa: F811
    settings, clients = aws
    made = (BatchTwin if request.param == "batch" else LocalTwin)(settings, clients, tmp_path)
    made.heard = []
    made.services.datasets.check_job.listeners.append(lambda dataset: made.heard.append(dataset.status.value))
    try:
        yield made
    finally:
        made.close()


def traffic(twin: Any, labelled: bool = True) -> dict[str, Any]:
    """Four captured queries, three of them labelled (or none), and the manifest that lists them."""
    captures, labels = [], []
    for i in range(4):
        key = capture_key(ADMIN.id, "fraud", "ep", "AllTraffic", AT, AT, unique=f"q{i}")
        twin.blobs.put_bytes(key, capture_record(CapturedQuery(f"q{i}", {"x1": float(i), "x2": 2.0 * i}, "a", AT)))
        captures.append(key)
        if labelled and i != 2:
            key = ground_truth_key(ADMIN.id, "fraud", AT, unique=f"l{i}")
            twin.blobs.put_bytes(key, ground_truth_record(f"q{i}", "ab"[i % 2]))
            labels.append(key)
    return dataset_builds.traffic_manifest(captures, labels, FOLDERS, "target")


def finish(twin: Any, dataset_id: str) -> dict[str, Any]:
    if twin.kind == "local":
        return twin.finish(dataset_id)
    assert twin.run_job(dataset_id) == 0  # the container: the worker builds, checks, writes its verdict
    detail = twin.job_of(dataset_id)  # moto's job: SUCCEEDED
    with chalice_client() as client:  # infra's rule on the job's end invokes the Lambda with the event
        answer = client.lambda_.invoke("dataset_job_ended", {"detail-type": "Batch Job State Change",
                                                             "source": "aws.batch", "detail": detail}).payload
    assert answer == {"dataset": dataset_id, "status": answer["status"]}
    return twin.services.datasets.get(ADMIN, dataset_id)


def test_the_labelled_queries_become_a_ready_dataset_and_the_listeners_hear_of_it(twin):
    started = twin.services.datasets.start_build(ADMIN, "fraud-captured", Task.TABULAR_CLASSIFICATION, "target",
                                                 traffic(twin))
    assert started["status"] == "PENDING"

    dataset = finish(twin, started["id"])

    assert (dataset["status"], dataset["error"], dataset["stats"]["rows"]) == ("READY", None, 3), dataset
    lines = twin.blobs.get_bytes(dataset_builds.file_key(started["id"])).decode().splitlines()
    assert lines[0] == "x1,x2,target" and len(lines) == 4 and not any(line.startswith("2.0,") for line in lines)
    assert wait_for(lambda: twin.heard, "the listeners") == ["READY"]  # locally: told just after the record


def test_traffic_without_labels_is_invalid_with_the_same_words_on_both_twins(twin):
    started = twin.services.datasets.start_build(ADMIN, "fraud-captured", Task.TABULAR_CLASSIFICATION, "target",
                                                 traffic(twin, labelled=False))

    dataset = finish(twin, started["id"])

    assert dataset["status"] == "INVALID"
    assert dataset["error"] == ("the dataset could not be built: no captured query has a label "
                                "(send them: POST /apps/{app}/labels)")
    assert wait_for(lambda: twin.heard, "the listeners") == ["INVALID"]
