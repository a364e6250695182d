"""The worker's dataset check job (issue 13, finding 3; kilele_worker.dataset_check): its S3
session names its two keys only, a bad message is exit 2, and a check that breaks still writes
a verdict saying so. (Its whole run against Batch and S3 is in tests/contract/test_dataset_check_dispatch.py.)"""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from kilele_worker.__main__ import main
from kilele_worker.aws import AwsClients, session_policy
from kilele_worker.dataset_check import DatasetCheckSpec
from kilele_worker.settings import DATASET_CHECK_ENV, WorkerSettings

BUCKET = "data"


def message(**changes) -> dict:
    return {"dataset_id": "d1", "bucket": BUCKET, "source_key": "datasets/d1/data",
            "verdict_key": "dataset-checks/d1/verdict.json", "task": "TABULAR_CLASSIFICATION",
            "target_column": "target", "max_bytes": 1000, "archive_limits": {}, **changes}


def run(check: dict) -> int:
    return main(["run"], settings=WorkerSettings.from_environ({DATASET_CHECK_ENV: json.dumps(check)}))


def test_the_session_reads_the_file_and_writes_the_verdict_only():
    spec = DatasetCheckSpec.parse(json.dumps(message()))

    policy = session_policy(spec)

    read, write = policy["Statement"]
    assert read["Resource"] == ["arn:aws:s3:::data/datasets/d1/data"]
    assert write["Resource"] == ["arn:aws:s3:::data/dataset-checks/d1/verdict.json"]


@pytest.mark.parametrize("bad", [{"dataset_id": ""}, {"verdict_key": None}, {"archive_limits": {"x": "1"}}])
def test_a_message_without_what_the_check_needs_is_exit_2(bad):
    assert run(message(**bad)) == 2


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def verdict(s3) -> dict:
    return json.loads(s3.get_object(Bucket=BUCKET, Key="dataset-checks/d1/verdict.json")["Body"].read())


def test_a_file_over_the_limit_is_refused(s3):
    s3.put_object(Bucket=BUCKET, Key="datasets/d1/data", Body=b"x1,target\n" + b"1,a\n" * 300)

    assert run(message()) == 0

    assert verdict(s3) == {"status": "INVALID", "reason": "the uploaded file is 1210 bytes; the limit is 1000",
                           "refused": True}


def test_a_check_that_breaks_says_so_and_keeps_the_file(s3):
    # No file where the message points: the check itself fails (the upload was complete).
    assert run(message()) == 0

    found = verdict(s3)
    assert found["status"] == "INVALID" and found["refused"] is False
    assert found["reason"].startswith("the check job failed: ")


def test_no_verdict_written_is_exit_3(s3):
    assert run(message(bucket="no-such-bucket")) == 3
    assert AwsClients().s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
