"""Wiring of the dataset check job (issue 13, finding 3): which dispatcher, from the settings."""
from __future__ import annotations

from typing import Any

from chalicelib.ports_datasets import DatasetCheckDispatcher
from chalicelib.services.dataset_checks import DatasetCheckJob
from chalicelib.settings import Settings
from chalicelib.wiring_runtimes import scheme_of


def dataset_check_dispatcher(settings: Settings, job: DatasetCheckJob, aws: Any) -> DatasetCheckDispatcher:
    """Where large uploads are checked, following ``trial_dispatch_uri`` (where the worker runs):
    local:// runs the check job on a thread of the local stack's process; batch:// submits it as
    an AWS Batch job in the worker image (CPU queue, CPU worker job definition), which writes a
    verdict the API records."""
    scheme, _ = scheme_of(settings.trial_dispatch_uri, "KILELE_TRIAL_DISPATCH_URI", ("batch", "local"))
    if scheme == "batch":
        from chalicelib.adapters.dataset_checks.batch import BatchDatasetCheckDispatcher

        return BatchDatasetCheckDispatcher(settings.batch_cpu_job_queue, settings.batch_job_definition,
                                           lambda: aws.client("batch"),
                                           lambda dataset_id: job.job_message(dataset_id, settings.data_bucket))
    from chalicelib.adapters.dataset_checks.local import LocalDatasetCheckDispatcher

    return LocalDatasetCheckDispatcher(job.run)
