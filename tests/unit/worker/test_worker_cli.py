"""`python -m kilele_worker run` as a real process against moto in server mode (AWS_ENDPOINT_URL),
the way the local trial runner and the Batch/SageMaker images start it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import requests
from worker_harness import DECISION_TREE, TREE_KNOBS, WORKER_SRC, Platform
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="module")
def moto_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    previous = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = str(port)  # moto's Step Functions interpreter calls SQS there
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    requests.post(f"{url}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    yield url, Platform(endpoint_url=url)
    server.stop()
    if previous is None:
        os.environ.pop("MOTO_PORT", None)
    else:
        os.environ["MOTO_PORT"] = previous


def _worker(args: list[str], endpoint: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, PYTHONPATH=str(WORKER_SRC), **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "kilele_worker", "run", *args], env=env,
                          capture_output=True, text=True, timeout=30)


def test_cli_with_a_message_file(moto_server, tmp_path):
    endpoint, platform = moto_server

    trial = platform.start_trial(DECISION_TREE, "SkDecisionTree", knobs=TREE_KNOBS)
    message_file = tmp_path / "message.json"
    message_file.write_text(json.dumps(trial.message))
    done = _worker(["--message-file", str(message_file)], endpoint)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[model] kilele: train() starts" in done.stdout  # the log is echoed to stdout
    described = platform.wait_execution(trial.execution_arn)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["result"]["score"] > 0.8


def test_cli_with_the_message_in_the_environment(moto_server):
    """Batch / SageMaker style: the message in the environment, and SageMaker's trailing `train`."""
    endpoint, platform = moto_server
    trial = platform.start_trial(DECISION_TREE, "SkDecisionTree", knobs=TREE_KNOBS)
    done = _worker(["train"], endpoint, {"KILELE_TRIAL_MESSAGE": json.dumps(trial.message)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert platform.wait_execution(trial.execution_arn)["status"] == "SUCCEEDED"


def test_cli_without_a_message_is_a_usage_error(moto_server):
    done = _worker([], moto_server[0], {"KILELE_TRIAL_MESSAGE": ""})
    assert done.returncode == 2 and "no message" in done.stderr
