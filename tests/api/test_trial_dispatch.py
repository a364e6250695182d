"""The AWS trial dispatcher against moto's Batch and Step Functions (the local one is covered
by the e2e train-job tests)."""
from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.task_tokens import SfnTaskTokens
from chalicelib.adapters.trial_dispatch.batch import MESSAGE_ENV, BatchTrialDispatcher

MESSAGE = {"task_token": "t", "trial": {"kind": "trial", "id": "trial-1", "train_job_id": "job-1",
                                        "gpu_count": 0, "timeout_seconds": 60}}


@pytest.fixture
def batch():
    with mock_aws(config={"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        ec2, iam, client = boto3.client("ec2"), boto3.client("iam"), boto3.client("batch")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        queues = {}
        for name in ("cpu", "gpu"):
            env = client.create_compute_environment(
                computeEnvironmentName=name, type="MANAGED", state="ENABLED", serviceRole=role,
                computeResources={"type": "FARGATE", "maxvCpus": 4, "subnets": [subnet], "securityGroupIds": [group]},
            )["computeEnvironmentArn"]
            queues[name] = client.create_job_queue(
                jobQueueName=name, state="ENABLED", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}]
            )["jobQueueArn"]
        definition = client.register_job_definition(
            jobDefinitionName="worker", type="container",
            containerProperties={"image": "worker:latest", "vcpus": 1, "memory": 512},
        )["jobDefinitionArn"]
        yield client, queues, definition


def test_dispatch_submits_the_worker_with_its_message(batch):
    client, queues, definition = batch
    dispatcher = BatchTrialDispatcher(queues["cpu"], queues["gpu"], definition, definition, batch=client,
                                     tokens=SfnTaskTokens(boto3.client("stepfunctions")))
    job_id = dispatcher.dispatch(MESSAGE)
    job = client.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["jobQueue"] == queues["cpu"] and job["jobName"] == "kilele-trial-trial-1"
    environment = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert json.loads(environment[MESSAGE_ENV]) == MESSAGE
    gpu_message = {**MESSAGE, "trial": {**MESSAGE["trial"], "id": "trial-2", "gpu_count": 1}}
    gpu_job = client.describe_jobs(jobs=[dispatcher.dispatch(gpu_message)])["jobs"][0]
    assert gpu_job["jobQueue"] == queues["gpu"]


def test_a_failed_batch_job_fails_its_task_token(batch):
    client, queues, definition = batch
    sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
    queue = sqs.create_queue(QueueName="trials")["QueueUrl"]
    machine = sfn.create_state_machine(name="m", roleArn="arn:aws:iam::123456789012:role/r", definition=json.dumps({
        "StartAt": "Run", "States": {"Run": {
            "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": queue, "MessageBody": {"task_token.$": "$$.Task.Token"}},
            "Catch": [{"ErrorEquals": ["WorkerLost"], "ResultPath": "$.failure", "Next": "Lost"}], "End": True},
            "Lost": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="e", input="{}")["executionArn"]
    token = None
    for _ in range(50):
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            token = json.loads(messages[0]["Body"])["task_token"]
            break
    dispatcher = BatchTrialDispatcher(queues["cpu"], queues["gpu"], definition, definition, batch=client,
                                     tokens=SfnTaskTokens(sfn))
    detail = {"status": "FAILED", "statusReason": "Essential container in task exited",
              "container": {"environment": [{"name": MESSAGE_ENV, "value": json.dumps({**MESSAGE, "task_token": token})}]}}
    assert dispatcher.fail_lost_job(detail) == "trial-1"
    assert dispatcher.fail_lost_job({**detail, "status": "SUCCEEDED"}) is None
    for _ in range(50):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            break
        time.sleep(0.1)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["failure"]["Error"] == "WorkerLost"
