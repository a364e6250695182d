"""How the worker reports (error.json before SendTaskFailure, only S3 and Step Functions), where
its settings come from (one module reads the environment), and the shape of the package."""
from __future__ import annotations

import ast
import json
import os

import pytest
from worker_harness import DECISION_TREE, TREE_KNOBS, WORKER_SRC

from kilele_worker.aws import AwsClients
from kilele_worker.message import parse_message
from kilele_worker.settings import MESSAGE_ENV, WorkerSettings
from kilele_worker.supervisor import run_trial
from kilele_worker.trial_log import TrialLog

PACKAGE = WORKER_SRC / "kilele_worker"
BROKEN_MODEL = "import kilele_no_such_module_for_reporting\n"
ENV_MODEL = """\
import os
from kilele.model import BaseModel


class M(BaseModel):
    @staticmethod
    def get_knob_config():
        return {}

    def train(self, dataset_path, **train_args):
        for name in sorted(os.environ):
            print("ENV", name, flush=True)

    def evaluate(self, dataset_path):
        return 0.5

    def predict(self, queries):
        return [0 for _ in queries]

    def dump_parameters(self):
        return {"w": 1.0}

    def load_parameters(self, params):
        pass
"""


def _settings(**changes) -> WorkerSettings:
    base = WorkerSettings.from_environ({"PATH": os.environ.get("PATH", "/usr/bin")})
    return WorkerSettings(**{**base.__dict__, **changes})


def test_the_error_report_is_written_before_send_task_failure(platform):
    trial = platform.start_trial(BROKEN_MODEL, "M")
    aws = AwsClients()
    seen = []
    send_task_failure = aws.sfn.send_task_failure

    def spy(**kwargs):
        seen.append((kwargs["error"], platform.object_exists(trial.fields["error_key"]),
                     platform.object_exists(trial.fields["logs_key"])))
        return send_task_failure(**kwargs)

    aws.sfn.send_task_failure = spy
    assert run_trial(parse_message(trial.message), aws, TrialLog(), settings=_settings()) == 0
    assert seen == [("TrialError", True, True)]  # the log and error.json exist when the failure is sent
    report = platform.error_report(trial)
    assert report["trial_id"] == trial.id and report["logs_key"] == trial.fields["logs_key"]
    assert "kilele_no_such_module_for_reporting" in report["message"]
    described = platform.wait_execution(trial.execution_arn)
    assert json.loads(described["output"])["error"]["Error"] == "TrialError"


def test_the_worker_uses_only_s3_and_step_functions(platform, run_worker, monkeypatch):
    import boto3

    created = []
    client = boto3.session.Session.client

    def spy(self, service_name, *args, **kwargs):
        created.append(service_name)
        return client(self, service_name, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", spy)
    trial = platform.start_trial(DECISION_TREE, "SkDecisionTree", knobs=TREE_KNOBS)
    created.clear()
    assert run_worker(trial.message) == 0
    assert set(created) == {"s3", "stepfunctions"}
    assert not hasattr(AwsClients(), "dynamodb")


def test_no_dynamodb_anywhere_in_the_worker():
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        for needle in ('"dynamodb"', "'dynamodb'", "TableName", "trials_table", "jobs_table"):
            assert needle not in source, f"{path.name} mentions {needle}"


def test_settings_is_the_only_reader_of_the_environment():
    for path in PACKAGE.glob("*.py"):
        if path.name == "settings.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "putenv", "unsetenv"):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id == "os":
                    pytest.fail(f"{path.name}:{node.lineno} uses os.{node.attr}")


def test_settings_from_an_explicit_environment():
    env = {MESSAGE_ENV: '{"x": 1}', "KILELE_WORKER_WORKDIR_ROOT": "/w", "KILELE_WORKER_KEEP_WORKDIR": "1",
           "KILELE_SANDBOX_USER": "0", "KILELE_SANDBOX_MAX_PROCESSES": "64", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    settings = WorkerSettings.from_environ(env)
    assert (settings.message_json, settings.message_s3, settings.workdir_root, settings.keep_workdir,
            settings.sandbox_user, settings.sandbox_max_processes) == ('{"x": 1}', None, "/w", True, False, 64)
    assert dict(settings.environ) == env and "s3cr3t" not in repr(settings)
    with pytest.raises(Exception):
        settings.environ["X"] = "y"  # a read-only snapshot
    with pytest.raises(Exception):
        settings.keep_workdir = False  # frozen
    defaults = WorkerSettings.from_environ({})
    assert defaults.sandbox_user and defaults.sandbox_isolate and not defaults.keep_workdir and defaults.workdir_root is None


def test_settings_are_passed_down(platform, tmp_path, monkeypatch):
    """The work directory and the model's environment come from the settings object, not from
    whatever the process environment says."""
    monkeypatch.setenv("NOT_FROM_SETTINGS", "1")
    trial = platform.start_trial(ENV_MODEL, "M")
    settings = _settings(workdir_root=str(tmp_path), keep_workdir=True,
                         environ={"PATH": os.environ["PATH"], "FROM_SETTINGS": "1", "AWS_SECRET_ACCESS_KEY": "x"})
    assert run_trial(parse_message(trial.message), AwsClients(), TrialLog(), settings=settings) == 0
    assert [p.name.startswith("kilele-trial-") for p in tmp_path.iterdir()] == [True]  # kept
    names = [line.split(" ENV ", 1)[1] for line in platform.log_text(trial).splitlines() if " ENV " in line]
    assert "FROM_SETTINGS" in names and "NOT_FROM_SETTINGS" not in names and "AWS_SECRET_ACCESS_KEY" not in names


def test_modules_are_small_and_documented():
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        assert len(source.splitlines()) < 400, path.name
        assert ast.get_docstring(ast.parse(source)), f"{path.name} has no docstring"


def test_message_env_is_the_settings_name():
    from kilele_worker import __main__ as entry

    assert entry.MESSAGE_ENV == MESSAGE_ENV == "KILELE_TRIAL_MESSAGE"
