"""The trial-dispatch contract: one suite run against both twins of :class:`chalicelib.ports.TrialDispatcher`.

- **batch**: :class:`BatchTrialDispatcher` as the composition root builds it (``batch://``), against
  moto's Batch (``use_docker: False``, so jobs run nothing and end SUCCEEDED at once) and moto's
  Step Functions interpreter. A lost job is reported the way AWS reports it: an EventBridge
  "Batch Job State Change" event (detail = the job as ``describe_jobs`` shows it, status FAILED)
  handed to the ``batch_job_failed`` Chalice handler. The worker's own report (SendTaskSuccess)
  is sent by the test, since moto's Batch runs no container.
- **local**: :class:`LocalTrialDispatcher` with a fake worker (an executable script written in the
  test's tmp dir and passed as the dispatcher's ``python``): it records the message file it was
  given, then does what the test tells it: answer its task token with SendTaskSuccess (through a
  moto server on 127.0.0.1 that shares the in-process moto's state), exit 0, or die (exit 3).
  No real trial runs.

Both twins face a real state machine with a ``sqs:sendMessage.waitForTaskToken`` state: the
message each dispatcher gets is the one Step Functions sent, with a live task token.

The contract: (a) dispatch returns a run id and starts the run with the message; (b) a run that is
lost fails its task token with ``WorkerLost``, which the state's Catch sees; (c) a run lost after
its worker answered changes nothing (failing an answered token is ignored, no exception); and
the trials-queue consumer of each side (the ``dispatch_trials`` Lambda; the local stack's
:class:`TrialRunner`) hands each queued message to its dispatcher. Below the suite: the Batch
specifics (GPU routing, which job events count) and the one task-token helper, SfnTaskTokens.
"""
from __future__ import annotations

import json
import stat
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from moto.server import ThreadedMotoServer

from chalicelib import wiring
from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.task_tokens import CAUSE_MAX_CHARS, SfnTaskTokens
from chalicelib.adapters.trial_dispatch.batch import MESSAGE_ENV, BatchTrialDispatcher
from chalicelib.adapters.trial_dispatch.local import LocalTrialDispatcher
from chalicelib.local.trial_runner import TrialRunner
from chalicelib.settings import process_environment

from settings_support import make_settings

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "batch": {"use_docker": False}}
WAIT_SECONDS = 15.0


def trial(trial_id: str = "trial-1", gpu_count: int = 0) -> dict[str, Any]:
    return {"kind": "trial", "id": trial_id, "train_job_id": "job-1", "gpu_count": gpu_count, "timeout_seconds": 60}


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------- AWS and the workflow


class RecordingTokens:
    """The real :class:`SfnTaskTokens`, with a record of every ``fail`` asked of it (and whether
    it raised), so a test can see what a dispatcher did with a token."""

    def __init__(self, tokens: SfnTaskTokens):
        self._tokens = tokens
        self.failed: list[tuple[str, str, bool]] = []  # (token, error, the answer of fail)
        self.errors: list[Exception] = []

    def fail(self, token: str, error: str, cause: str) -> bool:
        try:
            answered = self._tokens.fail(token, error, cause)
        except Exception as e:
            self.errors.append(e)
            raise
        self.failed.append((token, error, answered))
        return answered

    def fail_run(self, message: dict, error: str, cause: str) -> bool:
        try:
            answered = self._tokens.fail_run(message, error, cause)
        except Exception as e:
            self.errors.append(e)
            raise
        self.failed.append((message["task_token"], error, answered))
        return answered

    def succeed(self, token: str, output: Any) -> bool:
        return self._tokens.succeed(token, output)


class Workflow:
    """A state machine whose one task sends ``{"task_token", "trial"}`` to the trials queue and
    waits for the token; ``WorkerLost`` is caught into ``$.failure``, a success lands in ``$.result``."""

    def __init__(self, settings: Any, aws: AwsClients):
        self.sqs, self.sfn = aws.client("sqs"), aws.client("stepfunctions")
        self.queue_url = self.sqs.create_queue(QueueName=settings.resource_name("trials"))["QueueUrl"]
        self.arn = self.sfn.create_state_machine(
            name="contract-trial", roleArn="arn:aws:iam::123456789012:role/workflows",
            definition=json.dumps({"StartAt": "Run", "States": {
                "Run": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                        "Parameters": {"QueueUrl": self.queue_url,
                                       "MessageBody": {"task_token.$": "$$.Task.Token", "trial.$": "$.trial"}},
                        "ResultPath": "$.result",
                        "Catch": [{"ErrorEquals": ["WorkerLost"], "ResultPath": "$.failure", "Next": "Lost"}],
                        "End": True},
                "Lost": {"Type": "Pass", "End": True}}}),
        )["stateMachineArn"]

    def start(self, trial_spec: dict[str, Any]) -> str:
        """Start an execution for ``trial_spec``; returns its ARN (its message is then queued)."""
        return self.sfn.start_execution(stateMachineArn=self.arn, name=trial_spec["id"],
                                        input=json.dumps({"trial": trial_spec}))["executionArn"]

    def take_message(self) -> dict[str, Any]:
        """The next queued message, received and deleted (as a consumer does before dispatching)."""
        def receive() -> Optional[dict]:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=0).get("Messages", [])
            return messages[0] if messages else None

        message = wait_for(receive, "the state machine's message")
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return json.loads(message["Body"])

    def start_and_take(self, trial_spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        execution = self.start(trial_spec)
        return execution, self.take_message()

    def finished(self, execution: str) -> dict[str, Any]:
        """The execution once it has ended: its status and its output."""
        described = wait_for(lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
            self.sfn.describe_execution(executionArn=execution)), f"execution {execution} to end")
        return {"status": described["status"], "output": json.loads(described.get("output") or "null")}

    def waiting(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(v) for v in attributes.values())


def _batch_resources(aws: AwsClients) -> dict[str, str]:
    """Two Batch job queues (cpu, gpu) and two worker job definitions, in moto."""
    ec2, iam, batch = aws.client("ec2"), aws.client("iam"), aws.client("batch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="workers", Description="workers", VpcId=vpc)["GroupId"]
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    names: dict[str, str] = {}
    for kind in ("cpu", "gpu"):
        environment = batch.create_compute_environment(
            computeEnvironmentName=kind, type="MANAGED", state="ENABLED", serviceRole=role,
            computeResources={"type": "FARGATE", "maxvCpus": 4, "subnets": [subnet], "securityGroupIds": [group]},
        )["computeEnvironmentArn"]
        names[f"{kind}_queue"] = batch.create_job_queue(
            jobQueueName=f"trials-{kind}", state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )["jobQueueArn"]
        names[f"{kind}_definition"] = batch.register_job_definition(
            jobDefinitionName=f"worker-{kind}", type="container",
            containerProperties={"image": f"worker:{kind}", "vcpus": 1, "memory": 512},
        )["jobDefinitionArn"]
    return names


@contextmanager
def chalice_client() -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app) as client:
        yield client


# ---------------------------------------------------------------------------- the twins


class BatchTwin:
    """The AWS side: the composition root's Batch dispatcher, its services installed so the
    Chalice event handlers use them."""

    kind = "batch"

    def __init__(self, settings: Any, aws: AwsClients, workflow: Workflow):
        self.resources = _batch_resources(aws)
        self.settings = settings.with_values(
            trial_dispatch_uri="batch://",
            batch_cpu_job_queue=self.resources["cpu_queue"], batch_gpu_job_queue=self.resources["gpu_queue"],
            batch_job_definition=self.resources["cpu_definition"],
            batch_gpu_job_definition=self.resources["gpu_definition"],
        )
        self.tokens = RecordingTokens(SfnTaskTokens(aws.client("stepfunctions")))
        self.services = wiring.build(self.settings, aws=aws, tokens=self.tokens)
        self.dispatcher = self.services.trial_dispatcher
        assert isinstance(self.dispatcher, BatchTrialDispatcher)
        self.batch = aws.client("batch")
        self.workflow = workflow
        self._previous = wiring.install(self.services)

    def close(self) -> None:
        wiring.install(self._previous)

    def job(self, run_id: str) -> dict[str, Any]:
        return self.batch.describe_jobs(jobs=[run_id])["jobs"][0]

    def received(self, run_id: str) -> dict[str, Any]:
        """The message the run was started with: the job's environment carries it."""
        environment = {e["name"]: e["value"] for e in self.job(run_id)["container"]["environment"]}
        return json.loads(environment[MESSAGE_ENV])

    def answer(self, run_id: str, output: dict[str, Any]) -> None:
        """The worker in the job reports success (moto's Batch runs no container: the test does)."""
        self.workflow.sfn.send_task_success(taskToken=self.received(run_id)["task_token"], output=json.dumps(output))

    def lose(self, run_id: str) -> Any:
        """The job ends FAILED: EventBridge's rule invokes ``batch_job_failed`` with the job's detail."""
        detail = {**self.job(run_id), "status": "FAILED",
                  "statusReason": "Host EC2 (instance i-0123456789abcdef0) terminated."}
        with chalice_client() as client:
            event = client.events.generate_cw_event(
                source="aws.batch", detail_type="Batch Job State Change", detail=detail,
                resources=[detail["jobArn"]], region=self.settings.region)
            return client.lambda_.invoke("batch_job_failed", event).payload

    def end(self, run_id: str) -> None:
        """The job ends SUCCEEDED (moto's Batch marks it so at once): no event for the rule."""

    def settle(self) -> None:
        """Batch's loss is handled synchronously by the handler: nothing to wait for."""

    def consume(self, count: int) -> list[str]:
        """The ``dispatch_trials`` Lambda on the trials queue (batch size 1, as app.py declares it):
        each received message becomes an SQS event; the message is deleted once the handler returns."""
        runs: list[str] = []
        sqs = self.workflow.sqs
        with chalice_client() as client:
            while True:
                messages = sqs.receive_message(QueueUrl=self.workflow.queue_url, MaxNumberOfMessages=1,
                                               WaitTimeSeconds=0).get("Messages", [])
                if not messages:
                    return runs
                event = client.events.generate_sqs_event([m["Body"] for m in messages],
                                                         queue_name=self.settings.resource_name("trials"))
                runs += client.lambda_.invoke("dispatch_trials", event).payload
                for message in messages:
                    sqs.delete_message(QueueUrl=self.workflow.queue_url, ReceiptHandle=message["ReceiptHandle"])


FAKE_WORKER = '''#!{python}
"""Stands in for `python -m kilele_worker run --message-file PATH`: records what it was given,
then does what the test says: answer-<pid> (JSON output) makes it answer its task token with
SendTaskSuccess, exit-<pid> (a code) makes it exit. Exits 4 if told nothing for 30 s."""
import json
import os
import sys
import time
from pathlib import Path

here = Path(__file__).resolve().parent
pid = os.getpid()
args = sys.argv[1:]
message = json.loads(Path(args[args.index("--message-file") + 1]).read_text())
record = {{"pid": pid, "argv": args, "message": message, "aws_endpoint_url": os.environ.get("AWS_ENDPOINT_URL")}}
(here / f"received-{{pid}}.tmp").write_text(json.dumps(record))
(here / f"received-{{pid}}.tmp").rename(here / f"received-{{pid}}.json")

answered = False
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    if not answered and (here / f"answer-{{pid}}").exists():
        import boto3  # reaches the test's moto through AWS_ENDPOINT_URL, as the real worker does

        output = (here / f"answer-{{pid}}").read_text()
        boto3.client("stepfunctions").send_task_success(taskToken=message["task_token"], output=output)
        (here / f"answered-{{pid}}").touch()
        answered = True
    if (here / f"exit-{{pid}}").exists():
        sys.exit(int((here / f"exit-{{pid}}").read_text()))
    time.sleep(0.02)
sys.exit(4)
'''


class LocalTwin:
    """The local side: :class:`LocalTrialDispatcher` running the fake worker as its ``python``,
    with the worker environment the composition root would give it (pointing at a moto server
    that shares this process's moto state)."""

    kind = "local"

    def __init__(self, settings: Any, aws: AwsClients, workflow: Workflow, directory: Path):
        self.workflow = workflow
        self.directory = directory
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        worker_settings = settings.with_values(aws_endpoint_url=f"http://{host}:{port}",
                                               aws_access_key_id="testing", aws_secret_access_key="testing")
        self.python = directory / "fake-python"
        self.python.write_text(FAKE_WORKER.format(python=sys.executable))
        self.python.chmod(self.python.stat().st_mode | stat.S_IXUSR)
        self.tokens = RecordingTokens(SfnTaskTokens(aws.client("stepfunctions")))
        environment = process_environment(drop_prefixes=("AWS_", "KILELE_"),
                                          extra=wiring.child_aws_environment(worker_settings))
        self.dispatcher = LocalTrialDispatcher(directory / "work", self.tokens, python=str(self.python),
                                               environment=environment)
        self.settings = settings
        self._runner: Optional[TrialRunner] = None

    def close(self) -> None:
        if self._runner is not None:
            self._runner.stop()
        self.dispatcher.terminate_all(grace_seconds=2)
        self.server.stop()

    def record(self, run_id: str) -> dict[str, Any]:
        path = self.directory / f"received-{run_id}.json"
        wait_for(path.exists, f"the worker process {run_id} to start")
        return json.loads(path.read_text())

    def received(self, run_id: str) -> dict[str, Any]:
        """The message the worker process parsed from the message file it was given."""
        return self.record(run_id)["message"]

    def _tell(self, run_id: str, command: str, value: str) -> None:
        self.record(run_id)
        temporary = self.directory / f"{command}-{run_id}.tmp"
        temporary.write_text(value)
        temporary.rename(self.directory / f"{command}-{run_id}")

    def answer(self, run_id: str, output: dict[str, Any]) -> None:
        """The worker process reports success (SendTaskSuccess), and keeps running."""
        self._tell(run_id, "answer", json.dumps(output))
        wait_for((self.directory / f"answered-{run_id}").exists, f"worker {run_id} to answer")

    def end(self, run_id: str) -> None:
        """The worker process exits 0."""
        self._tell(run_id, "exit", "0")

    def lose(self, run_id: str) -> None:
        """The worker process dies (exit 3), whether it answered or not."""
        self._tell(run_id, "exit", "3")

    def settle(self) -> None:
        """Wait until every worker process has been reaped: the dispatcher has then failed the
        token of each that exited non-zero, and removed its message file."""
        wait_for(lambda: self.dispatcher.running == 0, "the worker processes to end")
        wait_for(lambda: not list((self.directory / "work").glob("trial-*.json")), "the runs' message files to go")

    def consume(self, count: int) -> list[str]:
        """The local stack's trial runner on the trials queue, until ``count`` runs started."""
        self._runner = TrialRunner(self.workflow.queue_url, self.workflow.sqs, self.dispatcher, max_parallel=4)
        self._runner.start()
        wait_for(lambda: self.workflow.waiting() == 0, "the trial runner to take the queued messages")
        return wait_for(lambda: (lambda runs: runs if len(runs) >= count else None)(
            [str(json.loads(p.read_text())["pid"]) for p in sorted(self.directory.glob("received-*.json"))]),
            f"{count} worker processes to start")


@pytest.fixture
def aws() -> Iterator[tuple[Any, AwsClients]]:
    with mock_aws(config=MOTO_CONFIG):
        settings = make_settings()
        yield settings, AwsClients(settings.region)


@pytest.fixture
def workflow(aws) -> Workflow:
    return Workflow(*aws)


@pytest.fixture(params=["batch", "local"])
def twin(request, aws, workflow, tmp_path):
    settings, clients = aws
    made = BatchTwin(settings, clients, workflow) if request.param == "batch" else \
        LocalTwin(settings, clients, workflow, tmp_path)
    try:
        yield made
    finally:
        made.close()


# ---------------------------------------------------------------------------- the contract


def test_dispatch_returns_a_run_id_and_starts_the_run_with_the_message(twin, workflow):
    _, message = workflow.start_and_take(trial("trial-1"))
    assert message["trial"] == trial("trial-1") and message["task_token"]

    run_id = twin.dispatcher.dispatch(message)

    assert isinstance(run_id, str) and run_id
    assert twin.received(run_id) == message
    twin.answer(run_id, {"score": 0.5})  # let the run end
    twin.end(run_id)


def test_a_lost_worker_fails_its_task_token_with_worker_lost(twin, workflow):
    execution, message = workflow.start_and_take(trial("trial-1"))
    run_id = twin.dispatcher.dispatch(message)
    twin.received(run_id)

    twin.lose(run_id)

    finished = workflow.finished(execution)
    assert finished["status"] == "SUCCEEDED"  # through the Catch
    assert finished["output"]["failure"]["Error"] == "WorkerLost"
    assert "result" not in finished["output"]
    twin.settle()
    assert twin.tokens.failed == [(message["task_token"], "WorkerLost", True)] and twin.tokens.errors == []


def test_a_run_lost_after_its_worker_answered_changes_nothing(twin, workflow):
    execution, message = workflow.start_and_take(trial("trial-1"))
    run_id = twin.dispatcher.dispatch(message)

    twin.answer(run_id, {"score": 0.75})
    # On AWS the first answer to a token is final as soon as SendTaskSuccess returns; moto's
    # interpreter lets a later answer overwrite one it has not consumed yet, so the run is lost
    # only once the execution has taken the worker's answer.
    answered = workflow.finished(execution)
    twin.lose(run_id)

    twin.settle()
    finished = workflow.finished(execution)
    assert finished["status"] == "SUCCEEDED"
    assert finished["output"]["result"] == {"score": 0.75} and "failure" not in finished["output"]
    # The dispatcher did try to fail the token, and nothing was raised. (AWS answers that
    # SendTaskFailure with TaskTimedOut/InvalidToken, and fail() says False; moto accepts it
    # silently, so the answer is not checked here: the execution's unchanged result is.)
    assert [(token, error) for token, error, _ in twin.tokens.failed] == [(message["task_token"], "WorkerLost")]
    assert twin.tokens.errors == []
    assert finished == answered


def test_the_trials_queue_consumer_dispatches_each_message(twin, workflow):
    executions = {spec["id"]: workflow.start(spec) for spec in (trial("trial-1"), trial("trial-2"))}
    wait_for(lambda: workflow.waiting() == 2, "both messages to be queued")

    runs = twin.consume(2)

    assert len(runs) == 2 and workflow.waiting() == 0  # taken off the queue once dispatched
    received = {twin.received(run)["trial"]["id"]: (run, twin.received(run)) for run in runs}
    assert {k: v[1]["trial"] for k, v in received.items()} == {"trial-1": trial("trial-1"),
                                                               "trial-2": trial("trial-2")}
    for trial_id, (run, _) in received.items():  # the runs hold the executions' live tokens
        twin.answer(run, {"trial": trial_id})
        twin.end(run)
    for trial_id, execution in executions.items():
        assert workflow.finished(execution)["output"]["result"] == {"trial": trial_id}


# ---------------------------------------------------------------------------- Batch only


@pytest.fixture
def batch_twin(aws, workflow):
    made = BatchTwin(*aws, workflow)
    try:
        yield made
    finally:
        made.close()


def test_batch_submits_the_worker_job_to_the_cpu_or_gpu_queue(batch_twin):
    cpu_message = {"task_token": "token-1", "trial": trial("trial-1")}
    cpu = batch_twin.job(batch_twin.dispatcher.dispatch(cpu_message))
    assert cpu["jobName"] == "kilele-trial-trial-1"
    assert (cpu["jobQueue"], cpu["jobDefinition"]) == (batch_twin.resources["cpu_queue"],
                                                       batch_twin.resources["cpu_definition"])
    assert cpu["timeout"] == {"attemptDurationSeconds": 60 + 600}
    assert cpu["tags"] == {"kilele:trial": "trial-1", "kilele:train-job": "job-1"}

    gpu_message = {"task_token": "token-2", "trial": trial("trial-2", gpu_count=1)}
    gpu = batch_twin.job(batch_twin.dispatcher.dispatch(gpu_message))
    assert (gpu["jobQueue"], gpu["jobDefinition"]) == (batch_twin.resources["gpu_queue"],
                                                       batch_twin.resources["gpu_definition"])
    assert batch_twin.received(gpu["jobId"]) == gpu_message
    # (moto's describe_jobs does not show the GPU resourceRequirements override the job carries)


def test_batch_job_failed_handles_only_failed_trial_jobs(batch_twin, workflow):
    execution, message = workflow.start_and_take(trial("trial-1"))
    run_id = batch_twin.dispatcher.dispatch(message)
    job = batch_twin.job(run_id)

    # a job that did not fail, or that is no trial of ours, is left alone
    assert batch_twin.dispatcher.fail_lost_job({**job, "status": "SUCCEEDED"}) is None
    assert batch_twin.dispatcher.fail_lost_job({**job, "status": "FAILED", "container": {"environment": []}}) is None
    assert batch_twin.tokens.failed == []

    assert batch_twin.lose(run_id) == "trial-1"  # the handler answers the lost trial's id
    assert workflow.finished(execution)["output"]["failure"]["Error"] == "WorkerLost"


# ---------------------------------------------------------------------------- the task-token helper


def test_task_tokens_nobody_waits_for_are_ignored(aws, workflow):
    tokens = SfnTaskTokens(aws[1].client("stepfunctions"))
    execution, message = workflow.start_and_take(trial("trial-1"))
    assert tokens.succeed(message["task_token"], {"score": 1.0}) is True
    assert workflow.finished(execution)["output"]["result"] == {"score": 1.0}

    assert tokens.succeed(message["task_token"], {"score": 0.0}) is False  # moto: InvalidToken
    assert tokens.fail("no-such-token", "WorkerLost", "gone") is False  # moto: InvalidToken
    tokens.fail(message["task_token"], "WorkerLost", "late")  # moto accepts it; AWS: TaskTimedOut -> False
    assert workflow.finished(execution)["output"]["result"] == {"score": 1.0}


@pytest.mark.parametrize("code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_task_tokens_map_the_aws_gone_codes_to_false(code):
    # moto never answers TaskTimedOut or TaskDoesNotExist: AWS's error codes are stubbed here.
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    with Stubber(sfn) as stub:
        stub.add_client_error("send_task_failure", service_error_code=code, http_status_code=400,
                              expected_params={"taskToken": "t", "error": "WorkerLost", "cause": "x" * CAUSE_MAX_CHARS})
        stub.add_client_error("send_task_success", service_error_code=code, http_status_code=400)
        assert SfnTaskTokens(sfn).fail("t", "WorkerLost", "x" * 1000) is False  # the cause is cut to 256
        assert SfnTaskTokens(sfn).succeed("t", {}) is False


def test_task_tokens_raise_other_errors():
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    with Stubber(sfn) as stub:
        stub.add_client_error("send_task_failure", service_error_code="ThrottlingException", http_status_code=400)
        with pytest.raises(ClientError):
            SfnTaskTokens(sfn).fail("t", "WorkerLost", "x")


def test_the_local_worker_gets_its_message_file_and_an_aws_endpoint(aws, workflow, tmp_path):
    twin = LocalTwin(*aws, workflow, tmp_path)
    try:
        _, message = workflow.start_and_take(trial("trial-1"))
        run_id = twin.dispatcher.dispatch(message)
        record = twin.record(run_id)
        assert record["argv"][:4] == ["-m", "kilele_worker", "run", "--message-file"]
        message_file = Path(record["argv"][4])
        assert message_file.parent.parent == tmp_path / "work"  # in the run's own job directory
        assert record["aws_endpoint_url"] == f"http://{':'.join(map(str, twin.server.get_host_and_port()))}"
        twin.answer(run_id, {"score": 0.5})
        twin.end(run_id)
        twin.settle()
        assert not message_file.parent.exists()  # the job directory is removed once the run ended
        assert twin.tokens.failed == []  # a worker that exits 0 is not failed
    finally:
        twin.close()
