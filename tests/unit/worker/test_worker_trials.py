"""Whole trials: moto's Step Functions sends the task-token message, the worker runs the model in a
real child process and reports; the execution and the S3 objects (log, claim, error.json) show the
outcome. The worker writes no trial record: the platform's trial loop does, from these."""
from __future__ import annotations

import json
import textwrap
import threading
import time

import pytest
from worker_harness import DECISION_TREE, TREE_KNOBS

from kilele.model import deserialize_params


MODEL_TEMPLATE = """\
{imports}import os, sys, time
from kilele.model import BaseModel


class M(BaseModel):
    @staticmethod
    def get_knob_config():
        return {{}}

    def train(self, dataset_path, **train_args):
{body}

    def evaluate(self, dataset_path):
        return 0.5

    def predict(self, queries):
        return [0 for _ in queries]

    def dump_parameters(self):
        return {{"w": 1.0}}

    def load_parameters(self, params):
        pass
"""


def model(body: str, imports: str = "") -> str:
    """A model file whose class ``M`` has the given train() body (other methods trivial)."""
    return MODEL_TEMPLATE.format(imports=imports, body=textwrap.indent(textwrap.dedent(body), " " * 8))


def test_decision_tree_on_iris_succeeds(platform, run_worker):
    trial = platform.start_trial(DECISION_TREE, "SkDecisionTree", knobs=TREE_KNOBS,
                                 dependencies={"scikit-learn": "1.9.1"})
    started = time.monotonic()
    assert run_worker(trial.message) == 0
    worker_wall = time.monotonic() - started

    described = platform.wait_execution(trial.execution_arn)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["path"] == "done"
    result = output["result"]
    assert result["trial_id"] == trial.id and result["status"] == "COMPLETED"
    assert result["score"] > 0.8
    assert result["model_seconds"] == result["train_seconds"] + result["evaluate_seconds"]
    assert 0 < result["model_seconds"] <= result["worker_seconds"] <= worker_wall
    assert result["params_key"] == trial.fields["params_key"] and result["logs_key"] == trial.fields["logs_key"]
    assert result["onnx_key"] is None  # the decision tree exports no ONNX
    assert not platform.object_exists(trial.fields["onnx_key"])

    blob = platform.s3.get_object(Bucket="kilele-test", Key=trial.fields["params_key"])["Body"].read()
    assert isinstance(deserialize_params(blob)["model"], str)
    log = platform.log_text(trial)
    assert "[worker] trial claimed" in log and "[model] kilele: train() starts" in log
    assert "trial COMPLETED" in log
    assert result["started_at"].endswith("Z") and platform.claim(trial)["claimed_at"] == result["started_at"]
    assert not platform.object_exists(trial.fields["error_key"])


def test_onnx_export_is_uploaded(platform, run_worker):
    source = model("pass").replace("    def load_parameters", "    def export_onnx(self):\n"
                                   "        return b'onnx-graph'\n\n    def load_parameters")
    trial = platform.start_trial(source, "M")
    assert run_worker(trial.message) == 0
    result = json.loads(platform.wait_execution(trial.execution_arn)["output"])["result"]
    assert result["onnx_key"] == trial.fields["onnx_key"]
    assert platform.s3.get_object(Bucket="kilele-test", Key=result["onnx_key"])["Body"].read() == b"onnx-graph"


def test_model_raising_in_train_is_a_caught_trial_error(platform, run_worker):
    trial = platform.start_trial(model('print("about to fail")\nraise ValueError("bad data: boom-123")'), "M")
    assert run_worker(trial.message) == 0  # a failed trial is not a failed worker

    described = platform.wait_execution(trial.execution_arn)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["path"] == "caught" and output["error"]["Error"] == "TrialError"
    log = platform.log_text(trial)
    assert "[model] about to fail" in log
    assert "Traceback (most recent call last)" in log and "ValueError: bad data: boom-123" in log
    report = platform.error_report(trial)
    assert report["error_type"] == "TrialError"
    assert report["message"] == "ValueError: bad data: boom-123"
    assert report["started_at"].endswith("Z") and report["worker_seconds"] > 0
    assert not platform.object_exists(trial.fields["params_key"])


def test_model_that_never_finishes_times_out(platform, run_worker):
    trial = platform.start_trial(model("while True:\n    time.sleep(0.05)"), "M", timeout_seconds=2)
    started = time.monotonic()
    assert run_worker(trial.message) == 0
    assert time.monotonic() - started < 5

    described = platform.wait_execution(trial.execution_arn)
    assert described["status"] == "FAILED" and described["error"] == "TrialTimeout"
    report = platform.error_report(trial)
    assert report["error_type"] == "TrialTimeout" and "timeout_seconds=2" in report["message"]
    assert "killed the model process" in platform.log_text(trial)


def test_a_stopped_execution_ends_the_trial(platform, run_worker):
    """stop_train_job stops the slots' executions: moto then answers the worker's next
    SendTaskHeartbeat with InvalidToken, and the worker kills the model and leaves."""
    trial = platform.start_trial(model('print("training", flush=True)\nwhile True:\n    time.sleep(0.05)'), "M",
                                 heartbeat_seconds=0.3)
    timer = threading.Timer(1.0, platform.sfn.stop_execution, kwargs={"executionArn": trial.execution_arn})
    timer.start()
    started = time.monotonic()
    try:
        assert run_worker(trial.message) == 4  # the execution no longer waits: nothing to report
    finally:
        timer.cancel()
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 5

    assert platform.sfn.describe_execution(executionArn=trial.execution_arn)["status"] != "RUNNING"
    log = platform.log_text(trial)
    assert "[model] training" in log and "killed the model process" in log
    assert "the execution no longer waits for this trial (" in log
    assert not platform.object_exists(trial.fields["error_key"])  # the stop recorded the trial (TERMINATED)


def test_missing_dependency(platform, run_worker):
    trial = platform.start_trial(model("pass"), "M",
                                 dependencies={"kilele-no-such-package": "1.0", "numpy": "0.0.1"})
    assert run_worker(trial.message) == 0

    described = platform.wait_execution(trial.execution_arn)
    assert described["status"] == "FAILED" and described["error"] == "DependencyError"
    report = platform.error_report(trial)
    assert report["error_type"] == "DependencyError"
    assert "kilele-no-such-package==1.0" in report["message"] and "numpy" not in report["message"]
    log = platform.log_text(trial)
    assert "warning: dependency numpy: 0.0.1 requested" in log  # another version is only a warning
    assert "starting the model process" not in log


def test_memory_hog_is_out_of_memory(platform, run_worker):
    trial = platform.start_trial(model("hog = [0] * (2 ** 28)  # 2 GB of pointers"), "M", memory_limit_mb=300)
    assert run_worker(trial.message) == 0

    described = platform.wait_execution(trial.execution_arn)
    assert described["status"] == "FAILED" and described["error"] == "OutOfMemory"
    report = platform.error_report(trial)
    assert report["error_type"] == "OutOfMemory" and "memory_limit_mb=300" in report["message"]
    assert "MemoryError" in platform.log_text(trial)


def test_model_file_that_fails_to_import(platform, run_worker):
    trial = platform.start_trial(model("pass", imports="import kilele_no_such_module\n"), "M")
    assert run_worker(trial.message) == 0

    output = json.loads(platform.wait_execution(trial.execution_arn)["output"])
    assert output["path"] == "caught" and output["error"]["Error"] == "TrialError"
    log = platform.log_text(trial)
    assert "No module named 'kilele_no_such_module'" in log and "Traceback" in log
    report = platform.error_report(trial)
    assert report["error_type"] == "TrialError" and report["message"].startswith("ModelLoadError: ")


def test_model_environment_has_no_aws_variables(platform, run_worker, monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "supervisor-only")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")
    monkeypatch.setenv("MOTO_PORT", "5000")
    monkeypatch.setenv("KILELE_TRIAL_MESSAGE", "{}")
    monkeypatch.setenv("KILELE_TEST_VISIBLE", "no")
    monkeypatch.setenv("PLAIN_SETTING_FOR_MODEL", "yes")
    trial = platform.start_trial(model('for name in sorted(os.environ):\n    print("ENV", name)'), "M")
    assert run_worker(trial.message) == 0
    assert platform.wait_execution(trial.execution_arn)["status"] == "SUCCEEDED"

    names = [line.split(" ENV ", 1)[1] for line in platform.log_text(trial).splitlines() if " ENV " in line]
    assert "PLAIN_SETTING_FOR_MODEL" in names and "PATH" in names
    assert not [n for n in names if n.startswith(("AWS_", "MOTO_", "KILELE_"))], names
    assert trial.message["task_token"] not in platform.log_text(trial)


def test_model_killed_by_a_signal_is_a_trial_error(platform, run_worker):
    trial = platform.start_trial(model("import signal\nos.kill(os.getpid(), signal.SIGSEGV)"), "M")
    assert run_worker(trial.message) == 0
    output = json.loads(platform.wait_execution(trial.execution_arn)["output"])
    assert output["error"]["Error"] == "TrialError"
    assert platform.error_report(trial)["message"] == "the model process was killed by SIGSEGV"


def test_evaluate_must_return_a_finite_float(platform, run_worker):
    trial = platform.start_trial(model("pass").replace("return 0.5", "return float('nan')"), "M")
    assert run_worker(trial.message) == 0
    output = json.loads(platform.wait_execution(trial.execution_arn)["output"])
    assert output["error"]["Error"] == "TrialError"
    assert "finite float" in platform.error_report(trial)["message"]


def test_a_duplicate_delivery_neither_runs_nor_answers(platform, run_worker):
    """SQS delivers at least once: the worker that created the claim owns the trial."""
    trial = platform.start_trial(model("print('ran', flush=True)"), "M")
    first = {"trial_id": trial.id, "claimed_at": "2026-12-01T00:00:00.000Z", "host": "first", "pid": 1}
    platform.s3.put_object(Bucket="kilele-test", Key=trial.fields["claim_key"], Body=json.dumps(first).encode(),
                           IfNoneMatch="*")
    assert run_worker(trial.message) == 0  # 0: the dispatcher must not fail the token on its behalf
    time.sleep(0.2)
    assert platform.sfn.describe_execution(executionArn=trial.execution_arn)["status"] == "RUNNING"  # no answer
    assert platform.claim(trial) == first
    for key in ("logs_key", "error_key", "params_key"):  # it wrote nothing of the owner's
        assert not platform.object_exists(trial.fields[key]), key
    platform.sfn.stop_execution(executionArn=trial.execution_arn)


def test_the_same_message_twice_runs_the_model_once(platform, run_worker):
    trial = platform.start_trial(model("print('the model ran', flush=True)"), "M")
    assert run_worker(trial.message) == 0
    assert platform.wait_execution(trial.execution_arn)["status"] == "SUCCEEDED"
    log = platform.log_text(trial)
    assert run_worker(trial.message) == 0
    assert platform.log_text(trial) == log and log.count("the model ran") == 1


def test_the_claim_is_a_conditional_put(platform):
    """moto (5.2.5) implements S3's conditional writes: the second IfNoneMatch put fails."""
    from botocore.exceptions import ClientError

    platform.s3.put_object(Bucket="kilele-test", Key="trials/x/claim.json", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as raised:
        platform.s3.put_object(Bucket="kilele-test", Key="trials/x/claim.json", Body=b"2", IfNoneMatch="*")
    assert raised.value.response["Error"]["Code"] == "PreconditionFailed"
    assert platform.s3.get_object(Bucket="kilele-test", Key="trials/x/claim.json")["Body"].read() == b"1"


def test_a_token_the_execution_no_longer_waits_for(platform):
    from dataclasses import replace

    from kilele_worker.__main__ import main
    from kilele_worker.settings import WorkerSettings

    trial = platform.start_trial(model("while True:\n    time.sleep(0.05)"), "M")
    # Someone else answered the task: the heartbeat now gets InvalidToken, asked again for
    # token_settle_seconds before it is believed (no heartbeat was accepted: kilele_worker.heartbeats).
    platform.sfn.send_task_success(taskToken=trial.message["task_token"], output="{}")
    assert platform.wait_execution(trial.execution_arn)["status"] == "SUCCEEDED"
    settings = replace(WorkerSettings.from_environ(), token_settle_seconds=1.0)
    started = time.monotonic()
    assert main(["run", "--message-json", json.dumps(trial.message)], settings=settings) == 4
    assert time.monotonic() - started < 6
    log = platform.log_text(trial)
    assert "the execution no longer waits for this trial (InvalidToken)" in log
    assert not platform.object_exists(trial.fields["error_key"])


def test_invalid_message_with_a_token_is_failed(platform, run_worker):
    trial = platform.start_trial(model("pass"), "M")
    bad = {"task_token": trial.message["task_token"], "trial": {"id": trial.id}}
    assert run_worker(bad) == 0
    output = json.loads(platform.wait_execution(trial.execution_arn)["output"])
    assert output["error"]["Error"] == "TrialError"


def test_message_without_a_token_is_a_usage_error(run_worker):
    assert run_worker({"trial": {}}) == 2


def test_model_killed_near_its_memory_limit_is_out_of_memory(platform, run_worker):
    # What the kernel's OOM killer does to a process at its limit: SIGKILL, no MemoryError.
    body = '''
    import mmap, re, signal
    size_kb = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
    block = mmap.mmap(-1, (int(1024 * 1024 * 0.9) - size_kb) * 1024)  # address space, pages untouched
    print("holding", len(block), flush=True)
    time.sleep(0.6)  # the supervisor samples the process every 0.2 s
    os.kill(os.getpid(), signal.SIGKILL)
    '''
    trial = platform.start_trial(model(body), "M", memory_limit_mb=1024)
    assert run_worker(trial.message) == 0
    described = platform.wait_execution(trial.execution_arn)
    assert described["status"] == "FAILED" and described["error"] == "OutOfMemory"
    report = platform.error_report(trial)
    assert report["message"] == "the model process was killed by SIGKILL: out of memory (memory_limit_mb=1024)"


def test_sigterm_stops_the_trial(platform, run_worker):
    """Batch's TerminateJob / SageMaker's StopTrainingJob send SIGTERM to the worker."""
    import os
    import signal

    trial = platform.start_trial(model("while True:\n    time.sleep(0.05)"), "M")
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert run_worker(trial.message) == 0
    finally:
        timer.cancel()
    assert signal.getsignal(signal.SIGTERM) is before  # the worker restores the handler
    described = platform.wait_execution(trial.execution_arn)
    assert described["status"] == "FAILED" and described["error"] == "TrialStopped"
    assert "SIGTERM" in platform.error_report(trial)["message"]


def test_model_runs_as_another_user_when_the_worker_is_root(platform, run_worker, monkeypatch):
    import os
    import pwd

    import subprocess
    import sys

    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root (the images run the supervisor as root)")
    from kilele_worker.sandbox import child_environment

    try:
        probe = subprocess.run([sys.executable, "-c", "import kilele_worker.child, kilele.model"], user="nobody",
                               env=child_environment(os.environ), capture_output=True, cwd="/", timeout=30).returncode
    except PermissionError:
        probe = 1
    if probe != 0:
        pytest.skip("user nobody cannot run this interpreter or import kilele (e.g. it lives under /root)")
    monkeypatch.setenv("KILELE_MODEL_USER", "nobody")
    body = '''
    print("uid", os.getuid(), flush=True)
    try:
        open(f"/proc/{os.getppid()}/environ", "rb").read()
        print("read the supervisor environment", flush=True)
    except OSError as e:
        print("supervisor environment:", type(e).__name__, flush=True)
    open("scratch-file", "w").write("ok")  # the work directory's scratch/ is writable
    '''
    trial = platform.start_trial(model(body), "M")
    assert run_worker(trial.message) == 0
    assert platform.wait_execution(trial.execution_arn)["status"] == "SUCCEEDED"
    log = platform.log_text(trial)
    assert f"uid {pwd.getpwnam('nobody').pw_uid}" in log
    assert "supervisor environment: PermissionError" in log


def test_describe_reports_the_knob_config(platform, run_worker):
    trial = platform.start_trial(DECISION_TREE, "SkDecisionTree", kind="describe", params_key=None,
                                 dependencies={"scikit-learn": "1.9.1"})
    assert run_worker(trial.message) == 0
    described = platform.wait_execution(trial.execution_arn)
    result = json.loads(described["output"])["result"]
    assert result["knob_config"]["max_depth"] == {"type": "integer", "value_min": 1, "value_max": 32, "is_exp": True}
    assert "knob config" in platform.log_text(trial)


def test_describe_of_a_broken_model_fails_with_its_error_in_the_log(platform, run_worker):
    trial = platform.start_trial("import no_such_module\n", "M", kind="describe", params_key=None)
    assert run_worker(trial.message) == 0
    assert json.loads(platform.wait_execution(trial.execution_arn)["output"])["path"] == "caught"
    assert "no_such_module" in platform.log_text(trial)
    report = platform.error_report(trial)
    assert report["kind"] == "describe" and report["error_type"] == "TrialError" and "no_such_module" in report["message"]


def test_the_log_so_far_is_readable_while_the_trial_runs(platform):
    """The supervisor uploads the log while the model runs (every log_upload_seconds, when it
    grew): a reader sees the model's first lines before the trial ends."""
    from kilele_worker.supervisor import run_trial
    from kilele_worker.message import parse_message
    from kilele_worker.settings import WorkerSettings

    trial = platform.start_trial(model('print("epoch 1 done", flush=True)\ntime.sleep(4)'), "M")
    settings = WorkerSettings(log_upload_seconds=0.2)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (run_trial(parse_message(json.dumps(trial.message)),
                                                        settings=settings), done.set()))
    worker.start()
    seen = ""
    deadline = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < deadline:
        if platform.object_exists(trial.fields["logs_key"]):
            seen = platform.log_text(trial)
            if "epoch 1 done" in seen:
                break
        time.sleep(0.1)
    running = not done.is_set()
    worker.join(timeout=60)
    assert "epoch 1 done" in seen and running, seen
    assert "trial COMPLETED" in platform.log_text(trial)
