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
"""
from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from chalicelib import resources
from chalicelib.services.dataset_checks import VERDICT_PREFIX

from .data import Data
from .worker_compute import WorkerCompute


def grant_dataset_checks(api: lambda_.Function, batch_job_failed: lambda_.Function, data: Data,
                         worker_compute: WorkerCompute) -> None:
    """The grants and settings of dataset check jobs (see the module's docstring)."""
    for key, value in worker_compute.environment().items():
        api.add_environment(key, value)
    worker_compute.grant_submit(api)
    data.tables[resources.DATASETS.name].grant_read_write_data(batch_job_failed)
    bucket = data.data_bucket
    batch_job_failed.add_to_role_policy(iam.PolicyStatement(
        actions=["s3:GetObject", "s3:DeleteObject"], resources=[bucket.arn_for_objects(f"{VERDICT_PREFIX}*")]))
    batch_job_failed.add_to_role_policy(iam.PolicyStatement(
        actions=["s3:DeleteObject"], resources=[bucket.arn_for_objects("datasets/*")]))


__all__ = ["grant_dataset_checks"]
