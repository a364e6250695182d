"""The dataset-check contract (issue 13, finding 3): one suite against both twins of
:class:`chalicelib.ports_datasets.DatasetCheckDispatcher`, each as the composition root builds it.

- **batch**: :class:`BatchDatasetCheckDispatcher` (``batch://``) against moto's Batch
  (``use_docker: False``: a job runs nothing and ends SUCCEEDED at once). The container's part is
  played by the test: the worker's real entrypoint (``kilele_worker.__main__.main``) runs
  in-process with the job's environment as Batch would give it, so it reads the file from and
  writes its verdict to moto's S3. A job that dies is reported as AWS reports it: a "Batch Job
  State Change" event (the job as ``describe_jobs`` shows it, status FAILED) handed to the
  ``batch_job_failed`` Chalice handler.
- **local**: :class:`LocalDatasetCheckDispatcher`, which runs the platform's check job on a thread.

The contract: a large upload's completion answers PENDING and starts one job; the job ends READY
with the same stats the in-request check gives, or INVALID with the format check's message (the
refused file deleted); a dispatcher that cannot start the job leaves the dataset INVALID saying
so. Below the suite: what only the Batch twin has (the job it submits, the worker's variable, a
job that died before or after writing its verdict).
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from moto import mock_aws

from chalicelib import wiring
from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.blobs import BlobStore as S3Blobs
from chalicelib.adapters.dataset_checks.batch import CHECK_ENV, JOB_NAME_PREFIX, BatchDatasetCheckDispatcher
from chalicelib.adapters.dataset_checks.local import LocalDatasetCheckDispatcher
from chalicelib.entities import Task, User, UserType
from chalicelib.errors import Unavailable
from chalicelib.local.provision import provision
from chalicelib.resources import DATA_BUCKET, DATASETS, Resources
from chalicelib.services.dataset_checks import verdict_key

from settings_support import make_settings

MOTO_CONFIG = {"batch": {"use_docker": False}}
GOOD_CSV = b"x1,x2,target\n1,2,a\n3,4,b\n5,6,a\n"
BAD_CSV = b"x1,x2,target\n1,2,a\n3,oops,b\n"
WAIT_SECONDS = 15.0


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_SECONDS:g} s waiting for {what}")
        time.sleep(0.02)


def _batch_resources(aws: AwsClients) -> dict[str, str]:
    """The worker's CPU job queue and job definition, in moto."""
    ec2, iam, batch = aws.client("ec2"), aws.client("iam"), aws.client("batch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="workers", Description="workers", VpcId=vpc)["GroupId"]
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    environment = batch.create_compute_environment(
        computeEnvironmentName="cpu", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "FARGATE", "maxvCpus": 4, "subnets": [subnet], "securityGroupIds": [group]},
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(jobQueueName="trials-cpu", state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}])
    definition = batch.register_job_definition(jobDefinitionName="worker-cpu", type="container",
                                               containerProperties={"image": "worker:cpu", "vcpus": 1, "memory": 512})
    return {"queue": queue["jobQueueArn"], "definition": definition["jobDefinitionArn"]}


@contextmanager
def chalice_client() -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app) as client:
        yield client


class BatchTwin:
    """The AWS side, its services installed so the Chalice event handler uses them."""

    kind = "batch"

    def __init__(self, settings: Any, aws: AwsClients, tmp_path: Path):
        self.resources = _batch_resources(aws)
        self.settings = settings.with_values(trial_dispatch_uri="batch://", batch_cpu_job_queue=self.resources["queue"],
                                             batch_job_definition=self.resources["definition"])
        self.services = wiring.build(self.settings, aws=aws)
        self.blobs = S3Blobs(self.settings.data_bucket, aws.client("s3"))
        self.dispatcher = self.services.datasets._check_dispatcher
        assert isinstance(self.dispatcher, BatchDatasetCheckDispatcher)
        self.batch = aws.client("batch")
        self._previous = wiring.install(self.services)

    def close(self) -> None:
        wiring.install(self._previous)

    def jobs(self) -> list[dict[str, Any]]:
        summaries = [s for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
                     for s in self.batch.list_jobs(jobQueue=self.resources["queue"], jobStatus=status)["jobSummaryList"]]
        ids = sorted({s["jobId"] for s in summaries})
        return self.batch.describe_jobs(jobs=ids)["jobs"] if ids else []

    def job_of(self, dataset_id: str) -> dict[str, Any]:
        found = [j for j in self.jobs() if j["jobName"] == f"{JOB_NAME_PREFIX}{dataset_id}"]
        assert len(found) == 1, found
        return found[0]

    def run_job(self, dataset_id: str) -> int:
        """What the container does: the worker's entrypoint with the job's environment."""
        from kilele_worker.__main__ import main
        from kilele_worker.settings import WorkerSettings

        environment = {e["name"]: e["value"] for e in self.job_of(dataset_id)["container"]["environment"]}
        return main(["run"], settings=WorkerSettings.from_environ(environment))

    def lose(self, dataset_id: str, reason: str) -> Any:
        """The job ends FAILED: EventBridge's rule invokes ``batch_job_failed`` with its detail."""
        detail = {**self.job_of(dataset_id), "status": "FAILED", "statusReason": reason}
        with chalice_client() as client:
            event = client.events.generate_cw_event(source="aws.batch", detail_type="Batch Job State Change",
                                                    detail=detail, resources=[detail["jobArn"]],
                                                    region=self.settings.region)
            return client.lambda_.invoke("batch_job_failed", event).payload

    def finish(self, dataset_id: str) -> dict[str, Any]:
        assert self.run_job(dataset_id) == 0
        return self.services.datasets.get(ADMIN, dataset_id)  # reading it records the job's verdict

    def break_dispatch(self) -> None:
        self.dispatcher.job_queue = self.resources["queue"].replace("trials-cpu", "no-such-queue")


class LocalTwin:
    """The local side: the check job on a thread of this process."""

    kind = "local"

    def __init__(self, settings: Any, aws: AwsClients, tmp_path: Path):
        self.settings = settings.with_values(trial_dispatch_uri=f"local://{tmp_path / 'work'}")
        self.services = wiring.build(self.settings, aws=aws)
        self.blobs = S3Blobs(self.settings.data_bucket, aws.client("s3"))
        self.dispatcher = self.services.datasets._check_dispatcher
        assert isinstance(self.dispatcher, LocalDatasetCheckDispatcher)

    def close(self) -> None:
        self.dispatcher.close()

    def finish(self, dataset_id: str) -> dict[str, Any]:
        return wait_for(lambda: (lambda d: d if d["status"] != "PENDING" else None)(
            self.services.datasets.get(ADMIN, dataset_id)), f"dataset {dataset_id} to leave PENDING")

    def break_dispatch(self) -> None:
        self.dispatcher.close()


ADMIN = User(id="admin-1", email="admin@kilele", user_type=UserType.ADMIN, password_hash="-",
             created_at=datetime(2026, 12, 1, tzinfo=timezone.utc))


@pytest.fixture
def aws() -> Iterator[tuple[Any, AwsClients]]:
    with mock_aws(config=MOTO_CONFIG):
        settings = make_settings(dataset_check_threshold_bytes=16)
        clients = AwsClients(settings.region)
        # Only what a dataset check touches: the datasets table and the data bucket.
        provision(settings, clients, Resources(tables=(DATASETS,), buckets=(DATA_BUCKET,), queues=(), state_machines=()))
        yield settings, clients


@pytest.fixture(params=["batch", "local"])
def twin(request, aws, tmp_path):
    settings, clients = aws
    made = (BatchTwin if request.param == "batch" else LocalTwin)(settings, clients, tmp_path)
    try:
        yield made
    finally:
        made.close()


def uploaded(twin: Any, content: bytes) -> str:
    """A presigned upload of ``content`` (put straight into the bucket), not yet completed."""
    datasets = twin.services.datasets
    started = datasets.start_upload(ADMIN, "big", Task.TABULAR_CLASSIFICATION, len(content), target_column="target")
    dataset_id = started["dataset"]["id"]
    twin.blobs.put_bytes(f"datasets/{dataset_id}/data", content)
    return dataset_id


def pending(twin: Any, content: bytes) -> str:
    dataset_id = uploaded(twin, content)
    answer = twin.services.datasets.complete_upload(ADMIN, dataset_id)
    assert (answer["status"], answer["size_bytes"]) == ("PENDING", len(content))
    return dataset_id


# ---------------------------------------------------------------------------- the contract


def test_a_good_large_file_ends_ready_with_the_in_request_checks_stats(twin):
    dataset_id = pending(twin, GOOD_CSV)

    dataset = twin.finish(dataset_id)

    assert (dataset["status"], dataset["error"], dataset["size_bytes"]) == ("READY", None, len(GOOD_CSV))
    small = twin.services.datasets.create_from_bytes(ADMIN, "small", Task.TABULAR_CLASSIFICATION, GOOD_CSV,
                                                     target_column="target")
    assert dataset["stats"] == small["stats"] and dataset["stats"]["rows"] == 3
    assert twin.blobs.get_bytes(f"datasets/{dataset_id}/data") == GOOD_CSV
    assert twin.blobs.list_keys(verdict_key(dataset_id)) == []  # nothing left behind


def test_a_bad_large_file_ends_invalid_with_the_format_checks_message(twin):
    dataset_id = pending(twin, BAD_CSV)

    dataset = twin.finish(dataset_id)

    assert (dataset["status"], dataset["error"]) == ("INVALID", "line 3, column 'x2': 'oops' is not a number")
    assert twin.blobs.list_keys(f"datasets/{dataset_id}/") == []  # a refused file is deleted
    assert twin.services.datasets.get(ADMIN, dataset_id)["status"] == "INVALID"  # and stays so


def test_a_job_that_cannot_start_leaves_the_dataset_invalid_saying_so(twin):
    twin.break_dispatch()
    dataset_id = uploaded(twin, GOOD_CSV)

    with pytest.raises(Unavailable):
        twin.services.datasets.complete_upload(ADMIN, dataset_id)

    dataset = twin.services.datasets.get(ADMIN, dataset_id)
    assert dataset["status"] == "INVALID"
    assert dataset["error"].startswith("the check job could not be started: ")


# ---------------------------------------------------------------------------- Batch only


@pytest.fixture
def batch(aws, tmp_path):
    made = BatchTwin(*aws, tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_the_job_runs_the_worker_image_on_the_cpu_queue_with_its_message(batch):
    from kilele_worker.settings import DATASET_CHECK_ENV

    assert CHECK_ENV == DATASET_CHECK_ENV  # the dispatcher sets what the worker reads
    dataset_id = pending(batch, GOOD_CSV)

    job = batch.job_of(dataset_id)

    assert job["jobQueue"] == batch.resources["queue"] and job["jobDefinition"] == batch.resources["definition"]
    environment = {e["name"]: e["value"] for e in job["container"]["environment"]}
    message = json.loads(environment[CHECK_ENV])
    assert message["dataset_id"] == dataset_id and message["bucket"] == batch.settings.data_bucket
    assert (message["source_key"], message["verdict_key"]) == (f"datasets/{dataset_id}/data", verdict_key(dataset_id))
    assert (message["task"], message["target_column"]) == ("TABULAR_CLASSIFICATION", "target")
    assert job["tags"] == {"kilele:dataset-check": dataset_id}


def test_a_job_that_died_leaves_the_dataset_invalid_with_batchs_reason(batch):
    dataset_id = pending(batch, GOOD_CSV)

    answer = batch.lose(dataset_id, "OutOfMemoryError: Container killed due to memory usage")

    assert answer == {"dataset": dataset_id, "status": "INVALID"}
    dataset = batch.services.datasets.get(ADMIN, dataset_id)
    assert dataset["status"] == "INVALID"
    assert dataset["error"] == "the check job failed: OutOfMemoryError: Container killed due to memory usage"
    assert batch.blobs.get_bytes(f"datasets/{dataset_id}/data") == GOOD_CSV  # not refused: kept


def test_a_job_that_wrote_its_verdict_before_failing_keeps_the_verdict(batch):
    dataset_id = pending(batch, GOOD_CSV)
    assert batch.run_job(dataset_id) == 0

    batch.lose(dataset_id, "Essential container in task exited")

    assert batch.services.datasets.get(ADMIN, dataset_id)["status"] == "READY"


def test_a_trials_failed_job_is_still_the_trial_dispatchers(batch):
    """The rule's other jobs: a job without the check's variable is not a dataset's."""
    from chalicelib.adapters.dataset_checks.batch import lost_check

    assert lost_check({"status": "FAILED", "container": {"environment": [{"name": "KILELE_TRIAL_MESSAGE",
                                                                          "value": "{}"}]}}) is None
    assert lost_check({"status": "SUCCEEDED", "container": {"environment": [{"name": CHECK_ENV,
                                                                            "value": '{"dataset_id": "d"}'}]}}) is None
