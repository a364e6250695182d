"""Large datasets' check jobs on AWS (issue 13, finding 3): the API submits a Batch job in the
worker image (chalicelib/adapters/dataset_checks/batch.py) instead of reading the file itself.

- The API function gets the worker's Batch queue and job definition settings and may submit to
  them (as the trials dispatcher does); it reads the job's verdict with its bucket grant.
- The job runs as a trial does: its S3 session is the trial role narrowed to the check's two
  keys (kilele_worker.aws.run_keys), the file under ``datasets/`` and the verdict under
  ``dataset-checks/`` (worker_compute.WORKER_WRITES).
- ``batch_job_failed`` (the rule on the worker's queues' FAILED jobs) records a check whose job
  died: the datasets table, the verdict it may have written, and the file a refusing verdict
  deletes. Nothing more: no other table, no other prefix.
- A dataset of labelled captured traffic (issue 12 item 6) is built by the same job, from a
  sources manifest under ``dataset-builds/`` (chalicelib/services/dataset_builds.py): the breach's
  record step (``builders``: the workflow Lambda that records a continuous test) submits it, and
  the worker writes the built file there (worker_compute.WORKER_WRITES).
- :class:`DatasetJobEvents`: a rule on those jobs' ends (SUCCEEDED or FAILED, by job name)
  invokes ``app.dataset_job_ended``, which records the verdict at once and lets the retrain loop
  start its train job on the dataset: that function reads and writes the tables and the bucket
  and starts executions, as the workflow Lambdas do.
"""
from __future__ import annotations

from typing import Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from chalicelib import resources
from chalicelib.adapters.dataset_checks.batch import JOB_NAME_PREFIX
from chalicelib.services.dataset_builds import BUILD_PREFIX
from chalicelib.services.dataset_checks import VERDICT_PREFIX

from .data import Data
from .runtime import FunctionFactory, StateMachineArns
from .worker_compute import WorkerCompute

DATASET_JOB_ENDED_HANDLER = "app.dataset_job_ended"
DATASET_JOB_ENDED_TIMEOUT = Duration.seconds(60)


def grant_dataset_checks(api: lambda_.Function, batch_job_failed: lambda_.Function, data: Data,
                         worker_compute: WorkerCompute, builders: Sequence[lambda_.Function] = ()) -> None:
    """The grants and settings of dataset check jobs (see the module's docstring)."""
    for function in (api, *builders):
        for key, value in worker_compute.environment().items():
            function.add_environment(key, value)
        worker_compute.grant_submit(function)
    data.tables[resources.DATASETS.name].grant_read_write_data(batch_job_failed)
    bucket = data.data_bucket
    batch_job_failed.add_to_role_policy(iam.PolicyStatement(
        actions=["s3:GetObject", "s3:DeleteObject"], resources=[bucket.arn_for_objects(f"{VERDICT_PREFIX}*")]))
    batch_job_failed.add_to_role_policy(iam.PolicyStatement(
        actions=["s3:DeleteObject"], resources=[bucket.arn_for_objects("datasets/*"),
                                                bucket.arn_for_objects(f"{BUILD_PREFIX}*")]))


class DatasetJobEvents(Construct):
    """The function ``app.dataset_job_ended`` and the EventBridge rule that invokes it when a
    dataset check's Batch job on the worker's queues ends (see the module's docstring)."""

    def __init__(self, scope: Construct, construct_id: str, *, data: Data, worker_compute: WorkerCompute,
                 state_machine_arns: StateMachineArns, functions: FunctionFactory) -> None:
        super().__init__(scope, construct_id)
        self.function = functions.function(
            self, "DatasetJobEndedFunction", handler=DATASET_JOB_ENDED_HANDLER,
            environment={**functions.environment("kilele-datasets"), **worker_compute.environment()},
            timeout=DATASET_JOB_ENDED_TIMEOUT)
        # The verdict and the dataset's record; then the loop's train job: its records, its workflow.
        data.grant_table_data(self.function)
        data.data_bucket.grant_read_write(self.function)
        state_machine_arns.grant_executions(self.function)
        self.rule = events.Rule(
            self, "DatasetJobEndedRule",
            description="Kilele: a dataset check's Batch job ended -> record its verdict, the retrain loop goes on",
            event_pattern=events.EventPattern(
                source=["aws.batch"], detail_type=["Batch Job State Change"],
                detail={"status": ["SUCCEEDED", "FAILED"],
                        "jobName": [{"prefix": JOB_NAME_PREFIX}],
                        "jobQueue": [queue.job_queue_arn for queue in worker_compute.job_queues]}),
            targets=[targets.LambdaFunction(self.function)])


__all__ = ["DATASET_JOB_ENDED_HANDLER", "DatasetJobEvents", "grant_dataset_checks"]
