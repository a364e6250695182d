"""Trials that name an image (issue 11 item 3), on both trial dispatchers.

- **batch** (moto's Batch, which runs nothing): the trial is submitted under a job definition of
  the worker's with the image replaced, registered once and found again by its name; a job
  definition Batch cannot make fails the trial's token with why.
- **local**: a trial runs in the local image builder's virtual environment (``venv://``); a
  reference it cannot run (an ECR image URI) or an environment that is gone fails the token with
  why, and nothing is started. (That a trial really runs and imports inside an image is
  tests/e2e/test_model_images.py.)
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.adapters.trial_dispatch.batch import BatchTrialDispatcher
from chalicelib.adapters.trial_dispatch.batch_images import image_definition_name
from chalicelib.adapters.trial_dispatch.local import ImageUnavailable, LocalTrialDispatcher, image_python

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/kilele-managed-images:0123abcd"


class Tokens:
    """Records the failures a dispatcher reports (the token port's fail_run)."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, str, str]] = []

    def fail_run(self, message: dict[str, Any], error: str, cause: str) -> bool:
        self.failed.append((message["trial"]["id"], error, cause))
        return True


def message(trial_id: str = "t1", image: Any = None) -> dict[str, Any]:
    trial = {"id": trial_id, "kind": "trial", "train_job_id": "j1", "timeout_seconds": 60, "gpu_count": 0}
    if image is not None:
        trial["image"] = image
    return {"task_token": "token", "trial": trial}


@pytest.fixture
def batch():
    with mock_aws():
        from contract.test_trial_dispatch import _batch_resources
        from chalicelib.adapters.aws import AwsClients

        aws = AwsClients(region="us-east-1")
        names = _batch_resources(aws)
        client = aws.client("batch")
        tokens = Tokens()
        dispatcher = BatchTrialDispatcher(names["cpu_queue"], names["gpu_queue"], names["cpu_definition"],
                                          names["gpu_definition"], client, tokens)
        yield dispatcher, client, tokens


def test_batch_runs_a_trial_naming_an_image_under_a_definition_of_that_image_made_once(batch):
    dispatcher, client, tokens = batch
    plain = client.describe_jobs(jobs=[dispatcher.dispatch(message("t0"))])["jobs"][0]
    first = client.describe_jobs(jobs=[dispatcher.dispatch(message("t1", {"name": "deps-x", "ref": IMAGE}))])["jobs"][0]
    again = BatchTrialDispatcher(dispatcher.cpu_queue, dispatcher.gpu_queue, dispatcher.job_definition,
                                 dispatcher.gpu_job_definition, client, tokens)  # another process: found by name
    second = client.describe_jobs(jobs=[again.dispatch(message("t2", {"name": "deps-x", "ref": IMAGE}))])["jobs"][0]
    assert plain["jobDefinition"] == dispatcher.job_definition
    assert first["jobDefinition"] == second["jobDefinition"] != dispatcher.job_definition
    [definition] = client.describe_job_definitions(jobDefinitions=[first["jobDefinition"]])["jobDefinitions"]
    assert definition["jobDefinitionName"] == image_definition_name(dispatcher.job_definition, IMAGE)
    assert definition["containerProperties"]["image"] == IMAGE
    assert definition["containerProperties"]["memory"] == 512  # the rest is the worker's definition
    revisions = client.describe_job_definitions(jobDefinitionName=definition["jobDefinitionName"])["jobDefinitions"]
    assert len(revisions) == 1 and tokens.failed == []


def test_batch_fails_the_token_when_no_definition_can_be_made(batch):
    dispatcher, client, tokens = batch
    broken = BatchTrialDispatcher(dispatcher.cpu_queue, dispatcher.gpu_queue, "no-such-definition",
                                  dispatcher.gpu_job_definition, client, tokens)
    assert broken.dispatch(message("t1", {"name": "deps-x", "ref": IMAGE})) == ""
    [(trial, error, cause)] = tokens.failed
    assert (trial, error) == ("t1", "ImageUnavailable") and "no-such-definition" in cause


def test_local_runs_a_trial_in_a_local_images_interpreter_and_refuses_others(tmp_path: Path):
    env = tmp_path / "envs" / "key-build"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    assert image_python({"name": "deps-x", "ref": f"venv://{env}"}) == str(env / "bin" / "python")
    assert image_python(None) is None
    with pytest.raises(ImageUnavailable, match="not a local image"):
        image_python({"name": "deps-x", "ref": IMAGE})
    with pytest.raises(ImageUnavailable, match="is gone"):
        image_python({"name": "deps-y", "ref": f"venv://{tmp_path / 'gone'}"})

    tokens = Tokens()
    dispatcher = LocalTrialDispatcher(tmp_path / "work", tokens)  # type: ignore[arg-type]
    assert dispatcher.dispatch(message("t1", {"name": "deps-x", "ref": IMAGE})) == "image-unavailable"
    [(trial, error, cause)] = tokens.failed
    assert (trial, error) == ("t1", "ImageUnavailable") and "not a local image" in cause
    assert dispatcher.running == 0
