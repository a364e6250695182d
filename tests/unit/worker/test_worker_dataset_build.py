"""The worker's build of a dataset of labelled captured traffic (issue 12 item 6 on AWS;
kilele_worker.dataset_build), from the message and manifest the platform writes: the labelled
queries become a CSV the same job then checks; its S3 session reads the manifest and the app's
folders only; a file outside them, a line that is no record, or no label is an INVALID verdict
saying why, and nothing is written to the dataset's key."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws

from chalicelib.capture_format import (CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, CapturedQuery, app_prefix, capture_key,
                                       capture_record, ground_truth_key, ground_truth_record)
from chalicelib.services import dataset_builds
from chalicelib.services.dataset_checks import verdict_key
from kilele_worker.__main__ import main
from kilele_worker.aws import session_policy
from kilele_worker.dataset_check import DatasetCheckSpec
from kilele_worker.settings import DATASET_CHECK_ENV, WorkerSettings

BUCKET = "data"
AT = datetime(2026, 1, 1, 3, tzinfo=timezone.utc)
FOLDERS = [app_prefix(root, "u1", "fraud") + "/" for root in (CAPTURE_PREFIX, GROUND_TRUTH_PREFIX)]


def message(**changes) -> dict:
    return {"dataset_id": "d1", "bucket": BUCKET, "source_key": dataset_builds.file_key("d1"),
            "verdict_key": verdict_key("d1"), "task": "TABULAR_CLASSIFICATION", "target_column": "target",
            "max_bytes": 10_000, "archive_limits": {},
            "build": {"manifest_key": dataset_builds.manifest_key("d1"), "source_prefixes": FOLDERS,
                      "target_column": "target"}, **changes}


def run(check: dict) -> int:
    return main(["run"], settings=WorkerSettings.from_environ({DATASET_CHECK_ENV: json.dumps(check)}))


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def traffic(s3, rows) -> tuple[list[str], list[str]]:
    captures, labels = [], []
    for qid, x, label in rows:
        key = capture_key("u1", "fraud", "ep", "AllTraffic", AT, AT, unique=qid)
        s3.put_object(Bucket=BUCKET, Key=key, Body=capture_record(CapturedQuery(qid, {"x1": x, "x2": -x}, "a", AT)))
        captures.append(key)
        if label is not None:
            key = ground_truth_key("u1", "fraud", AT, unique=f"l{qid}")
            s3.put_object(Bucket=BUCKET, Key=key, Body=ground_truth_record(qid, label))
            labels.append(key)
    return captures, labels


def manifest(s3, captures, labels) -> None:
    s3.put_object(Bucket=BUCKET, Key=dataset_builds.manifest_key("d1"), Body=json.dumps(
        dataset_builds.traffic_manifest(captures, labels, FOLDERS, "target")).encode())


def verdict(s3) -> dict:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=verdict_key("d1"))["Body"].read())


def test_the_labelled_queries_become_the_dataset_the_job_then_checks(s3):
    rows = [(f"q{i}", float(i), ("a", "b")[i % 2] if i != 3 else None) for i in range(8)]
    manifest(s3, *traffic(s3, rows))

    assert run(message()) == 0

    found = verdict(s3)
    assert found["status"] == "READY", found
    assert found["stats"]["rows"] == 7 and found["stats"]["target_column"] == "target"
    lines = s3.get_object(Bucket=BUCKET, Key=dataset_builds.file_key("d1"))["Body"].read().decode().splitlines()
    assert lines[0] == "x1,x2,target" and len(lines) == 8 and "3.0,-3.0" not in "\n".join(lines)


def test_the_session_reads_the_manifest_and_the_apps_folders_and_writes_the_file_and_verdict():
    spec = DatasetCheckSpec.parse(json.dumps(message()))

    read, write = session_policy(spec)["Statement"]

    assert read["Resource"] == [f"arn:aws:s3:::data/{k}" for k in sorted(
        [dataset_builds.file_key("d1"), dataset_builds.manifest_key("d1")])] + [
        f"arn:aws:s3:::data/{p}*" for p in FOLDERS]
    assert write["Resource"] == [f"arn:aws:s3:::data/{k}" for k in sorted(
        [dataset_builds.file_key("d1"), verdict_key("d1")])]


@pytest.mark.parametrize("spoil, reason", [
    (lambda s3, c, lab: (c + ["datasets/other/data"], lab), "is not under the run's source folders"),
    (lambda s3, c, lab: (s3.put_object(Bucket=BUCKET, Key=c[0], Body=b"{nope\n"), (c, lab))[1],
     "the captured traffic could not be read: file 0, line 1"),
    (lambda s3, c, lab: (c, []), "no captured query has a label"),
])
def test_what_cannot_be_built_is_invalid_with_why_and_writes_no_file(s3, spoil, reason):
    captures, labels = traffic(s3, [("q1", 1.0, "a"), ("q2", 2.0, "b")])
    manifest(s3, *spoil(s3, captures, labels))

    assert run(message()) == 0

    found = verdict(s3)
    assert found["status"] == "INVALID" and found["refused"] is False
    assert found["reason"].startswith("the dataset could not be built: ") and reason in found["reason"], found
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=dataset_builds.file_key("d1")).get("KeyCount") == 0


@pytest.mark.parametrize("build", [{"manifest_key": ""}, {"manifest_key": "m", "source_prefixes": ["capture"]},
                                   {"manifest_key": "m", "source_prefixes": "capture/"}])
def test_a_build_without_its_manifest_or_folders_is_exit_2(build):
    assert run(message(build=build)) == 2
