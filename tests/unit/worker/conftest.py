"""Trials against moto in-process: a real Step Functions task token, S3, DynamoDB; the model runs
in a real child process (which never talks to AWS)."""
from __future__ import annotations

import json

import pytest
from moto import mock_aws

from worker_harness import Platform


@pytest.fixture
def platform():
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield Platform()


@pytest.fixture
def run_worker():
    """Runs the worker's entrypoint in-process (so moto sees its AWS calls); returns its exit code."""
    from kilele_worker.__main__ import main

    def run(message: dict) -> int:
        return main(["run", "--message-json", json.dumps(message)])

    return run
