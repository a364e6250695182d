"""The snapshot of moto's state: a round trip of every service the platform uses, S3 bodies kept
as files written once, and the refusals (another version, a damaged file, a missing body) that
never install half a snapshot."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from chalicelib.local.moto_snapshot import (
    BLOBS_DIR,
    SNAPSHOT_FILE,
    SnapshotRefused,
    SnapshotWriter,
    collect,
    install,
    load,
    read_header,
)

BODY = bytes(range(256)) * 4096  # 1 MiB


def clients():
    kw = {"region_name": "us-east-1"}
    return boto3.client("dynamodb", **kw), boto3.client("s3", **kw), boto3.client("sqs", **kw)


def fill():
    dynamodb, s3, sqs = clients()
    dynamodb.create_table(TableName="users", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.put_item(TableName="users", Item={"id": {"S": "u1"}, "email": {"S": "a@b"}})
    s3.create_bucket(Bucket="kilele-data")
    s3.put_object(Bucket="kilele-data", Key="datasets/iris.csv", Body=BODY)
    queue = sqs.create_queue(QueueName="trials")["QueueUrl"]  # holds a threading.Condition
    sqs.send_message(QueueUrl=queue, MessageBody="a trial")


def snapshot(directory):
    writer = SnapshotWriter(directory)
    assert writer.write(writer.pickle(collect()))
    return writer


def test_a_snapshot_brings_back_tables_objects_and_queues(tmp_path):
    with mock_aws():
        fill()
        snapshot(tmp_path)
    with mock_aws():  # moto starts empty
        dynamodb, s3, _ = clients()
        assert dynamodb.list_tables()["TableNames"] == []
        install(load(tmp_path))
        dynamodb, s3, sqs = clients()
        assert dynamodb.get_item(TableName="users", Key={"id": {"S": "u1"}})["Item"]["email"] == {"S": "a@b"}
        assert s3.get_object(Bucket="kilele-data", Key="datasets/iris.csv")["Body"].read() == BODY
        queue = sqs.get_queue_url(QueueName="trials")["QueueUrl"]
        assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "a trial"
        sqs.send_message(QueueUrl=queue, MessageBody="the queue's lock works again")


def test_s3_bodies_are_files_written_once_and_removed_with_their_object(tmp_path):
    with mock_aws():
        fill()
        writer = snapshot(tmp_path)
        [blob] = (tmp_path / BLOBS_DIR).iterdir()
        assert blob.read_bytes() == BODY and (tmp_path / SNAPSHOT_FILE).stat().st_size < len(BODY) // 10
        written = blob.stat().st_mtime_ns
        assert not writer.write(writer.pickle(collect()))  # nothing changed: nothing written
        _, s3, _ = clients()
        s3.put_object(Bucket="kilele-data", Key="other", Body=b"small")
        assert writer.write(writer.pickle(collect()))
        assert blob.stat().st_mtime_ns == written and len(list((tmp_path / BLOBS_DIR).iterdir())) == 2
        s3.delete_object(Bucket="kilele-data", Key="datasets/iris.csv")
        assert writer.write(writer.pickle(collect()))
        assert not blob.exists()


def rewrite(tmp_path, change_header=None, change_payload=None):
    path = tmp_path / SNAPSHOT_FILE
    magic, header, payload = path.read_bytes().split(b"\n", 2)
    fields = json.loads(header)
    if change_header:
        change_header(fields)
    if change_payload:
        payload = change_payload(payload)
    path.write_bytes(magic + b"\n" + json.dumps(fields).encode() + b"\n" + payload)


@pytest.mark.parametrize("field, value, said", [
    ("format", 999, "format 999"), ("moto", "4.0.0", "moto '4.0.0'"), ("python", "3.7", "python '3.7'"),
])
def test_a_snapshot_of_another_version_is_refused_with_the_hint(tmp_path, field, value, said):
    with mock_aws():
        fill()
        snapshot(tmp_path)
    rewrite(tmp_path, change_header=lambda fields: fields.update({field: value}))
    with pytest.raises(SnapshotRefused, match="another version") as refused:
        read_header(tmp_path)
    assert said in str(refused.value) and "--reset" in str(refused.value)
    with pytest.raises(SnapshotRefused):
        load(tmp_path)


@pytest.mark.parametrize("damage, said", [
    (lambda p: p[:-10], "damaged"),
    (lambda p: p[:100] + bytes([p[100] ^ 1]) + p[101:], "damaged"),
])
def test_a_damaged_snapshot_is_refused(tmp_path, damage, said):
    with mock_aws():
        fill()
        snapshot(tmp_path)
    rewrite(tmp_path, change_payload=damage)
    with pytest.raises(SnapshotRefused, match=said):
        load(tmp_path)


def test_a_file_that_is_no_snapshot_and_a_missing_body_are_refused(tmp_path):
    with mock_aws():
        fill()
        snapshot(tmp_path)
    for blob in (tmp_path / BLOBS_DIR).iterdir():
        blob.unlink()
    with pytest.raises(SnapshotRefused, match="S3 body .* is missing"):
        load(tmp_path)
    (tmp_path / SNAPSHOT_FILE).write_bytes(b"{}\n")
    with pytest.raises(SnapshotRefused, match="not a Kilele snapshot"):
        read_header(tmp_path)


def test_no_snapshot_is_no_state(tmp_path):
    assert read_header(tmp_path) is None and load(tmp_path) is None


def test_a_refused_snapshot_installs_nothing(tmp_path):
    with mock_aws():
        fill()
        snapshot(tmp_path)
    rewrite(tmp_path, change_payload=lambda p: p[:-1] + bytes([p[-1] ^ 1]))
    with mock_aws():
        with pytest.raises(SnapshotRefused):
            install(load(tmp_path))
        dynamodb, _, _ = clients()
        assert dynamodb.list_tables()["TableNames"] == []


def test_a_running_execution_comes_back_aborted_with_the_reason_and_its_history(tmp_path):
    config = {"stepfunctions": {"execute_state_machine": True}}
    definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}}}
    with mock_aws(config=config):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(name="train-worker", definition=json.dumps(definition),
                                           roleArn="arn:aws:iam::123456789012:role/x")["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name="job-g0")["executionArn"]
        assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
        snapshot(tmp_path)
        sfn.stop_execution(executionArn=execution)
    with mock_aws(config=config):
        install(load(tmp_path))
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        described = sfn.describe_execution(executionArn=execution)
        assert described["status"] == "ABORTED" and "the local stack stopped" in described["cause"]
        assert sfn.get_execution_history(executionArn=execution)["events"][0]["type"] == "ExecutionStarted"
        assert sfn.start_execution(stateMachineArn=machine, name="job-g1")["executionArn"]  # the machine works


def test_the_child_snapshots_only_when_a_request_changed_something_and_reports_failures(tmp_path):
    from chalicelib.local.moto_server import Gate, Snapshots

    gate = Gate()
    with mock_aws():
        fill()
        snapshots = Snapshots(tmp_path, gate, interval=60)
        snapshots.take()
        assert not (tmp_path / SNAPSHOT_FILE).exists()  # no request passed the gate: nothing is due
        with gate.request(changes=True):
            pass
        snapshots.take()
        assert read_header(tmp_path) and snapshots.status["snapshot_error"] is None and not gate.dirty

        blobs = tmp_path / BLOBS_DIR
        for blob in blobs.iterdir():
            blob.unlink()
        blobs.rmdir()
        blobs.write_text("not a directory")  # the next S3 body cannot be written (even by root)
        _, s3, _ = clients()
        s3.put_object(Bucket="kilele-data", Key="new", Body=b"new body")
        gate.dirty = True
        snapshots.take()
        assert "NotADirectoryError" in snapshots.status["snapshot_error"] and gate.dirty  # tried again next time
