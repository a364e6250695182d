"""The train-worker state machine executed by moto (server mode, in a thread), with the real
Lambda shim calling the real handlers, and a scripted trial runner in place of the worker.

With ``AWS_ENDPOINT_URL`` set (tests/emulator_support.py) the suite runs against that emulator
instead, e.g. LocalStack from scripts/test-localstack; DynamoDB goes to
``AWS_ENDPOINT_URL_DYNAMODB`` when set (docs/localstack.md)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from workflows_support import ScriptedTrials

WORKFLOW_SETTINGS = {
    "worker_slots_per_model": 2,
    "trial_heartbeat_timeout_seconds": 3,
    "max_consecutive_trial_errors": 3,
}


EARLY_ANSWER_LOST = ("LocalStack loses an answer to a run task (HeartbeatSeconds) that arrives before its wait starts: "
                     "the run then fails with States.Timeout; a race: docs/localstack.md, difference 7")
#: Tests that show a difference of LocalStack's from moto (docs/localstack.md): against LocalStack
#: they are reported xfailed with the reason and not run (scripts/test-localstack --runxfail runs
#: them, to see each difference again); against moto they run as always.
LOCALSTACK_DIFFERENCES = {
    "test_a_codebuild_build_that_died_is_failed_from_its_event_with_its_log_link":
        "LocalStack's open-source core has no CodeBuild (CreateProject: 501): docs/localstack.md, difference 3",
    "test_a_trial_whose_job_never_starts_fails_at_the_queue_timeout_saying_so":
        "a queue task that timed out is recorded as States.Timeout, not QueueTimeout (not yet explained): "
        "docs/localstack.md, difference 4",
}
#: The modules whose tests answer run tasks (HeartbeatSeconds, on the scripted runner's or the
#: worker's schedule): against LocalStack any of those answers can be lost (difference 7), in 2 or 3
#: of these tests per run on this loaded machine, a different few each time. There they are
#: xfail(strict=False): they run, and pass (XPASS) unless the race was lost. Against moto they run
#: as always, and must pass.
RUN_TASK_MODULES = frozenset({"test_train_worker", "test_queue_wait", "test_stress_test", "test_continuous_test"})
NO_RUN_TASK = frozenset({"test_app_versions_increment_atomically_under_concurrent_calls"})


def pytest_collection_modifyitems(config, items):
    from emulator_support import ENDPOINT_URL

    if not ENDPOINT_URL:
        return
    for item in items:
        if item.path.parent != Path(__file__).parent:
            continue
        reason = LOCALSTACK_DIFFERENCES.get(item.originalname)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, run=False))
        elif item.path.stem in RUN_TASK_MODULES and item.originalname not in NO_RUN_TASK:
            item.add_marker(pytest.mark.xfail(reason=EARLY_ANSWER_LOST, strict=False))


@pytest.fixture(scope="package")
def moto_server():
    """The AWS endpoint the suite runs against: the environment's emulator if the settings name
    one, else a moto server started here."""
    from emulator_support import ENDPOINT_URL

    if ENDPOINT_URL:
        yield ENDPOINT_URL
        return
    from moto.server import ThreadedMotoServer

    from chalicelib.local.moto_server import MOTO_CONFIG
    from chalicelib.local.ports import free_port

    port = free_port()
    saved = os.environ.get("MOTO_PORT")
    # moto runs in this process: its interpreter calls SQS at localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    requests.post(f"{url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
    yield url
    server.stop()
    if saved is None:
        os.environ.pop("MOTO_PORT", None)
    else:
        os.environ["MOTO_PORT"] = saved


@pytest.fixture
def platform(moto_server):
    """Fresh resources, the Lambda shim and a scripted trial runner; the services are built
    from settings pointing at the moto server and installed for the shim's handlers."""
    from chalicelib import wiring
    from chalicelib.adapters.aws import AwsClients
    from chalicelib.local.lambda_shim import LambdaShim
    from chalicelib.local.provision import provision
    from chalicelib.workflows.handlers import invoke
    from settings_support import make_settings

    from emulator_support import DYNAMODB_ENDPOINT_URL

    settings = make_settings(aws_endpoint_url=moto_server, aws_endpoint_url_dynamodb=DYNAMODB_ENDPOINT_URL,
                             **WORKFLOW_SETTINGS)
    aws = AwsClients(settings.region, settings.aws_endpoint_url, service_endpoints=settings.aws_service_endpoints)
    provisioned = provision(settings, aws)
    settings = settings.with_values(
        train_worker_state_machine_arn=provisioned.state_machine_arns["train-worker"],
        stress_test_state_machine_arn=provisioned.state_machine_arns["stress-test"],
        managed_image_state_machine_arn=provisioned.state_machine_arns["managed-image"],
        trials_queue_url=provisioned.queue_urls["trials"],
    )
    previous = wiring.install(None)
    built: list[Any] = []

    def rebuild(**values: Any) -> Any:
        services = wiring.build(settings.with_values(**values), aws=aws)
        wiring.install(services)
        built.append(services)
        return services

    services = rebuild()
    shim = LambdaShim(provisioned.queue_urls["lambda-shim"], aws.client("sqs"), services.tokens, invoke)
    shim.start()
    runner = ScriptedTrials(provisioned.queue_urls["trials"], aws)
    runner.start()
    yield Platform(services, runner, rebuild, settings.train_worker_state_machine_arn, aws)
    runner.stop()
    shim.stop()
    for services in built:
        services.close()
    wiring.install(previous)


class Platform:
    def __init__(self, services: Any, runner: ScriptedTrials, rebuild: Callable[..., Any], state_machine_arn: str,
                 aws: Any):
        self.services = services
        self.runner = runner
        self._rebuild = rebuild
        self.state_machine_arn = state_machine_arn
        self._sfn = aws.client("stepfunctions")

    def rebuild(self, **values: Any) -> None:
        """Rebuild the services with these settings values."""
        self.services = self._rebuild(**values)

    def setup_user_with_data(self) -> tuple[Any, str, str, str]:
        """A model developer with a model and a train + validation dataset."""
        from chalicelib.entities import Task, UserType

        users = self.services.users
        admin = users.ensure_superadmin("root@wf", "secret1")
        email = f"dev{time.monotonic_ns()}@wf"
        users.create_user(admin, email, "Tr4in-the-Model!", UserType.MODEL_DEVELOPER)
        dev = self.services.auth._users.get(email)
        csv = b"a,b,target\n1,2,x\n3,4,y\n5,6,x\n"
        train = self.services.datasets.create_from_bytes(dev, "train", Task.TABULAR_CLASSIFICATION, csv)
        val = self.services.datasets.create_from_bytes(dev, "val", Task.TABULAR_CLASSIFICATION, csv)
        source = b"from kilele.model import BaseModel\n\nclass M(BaseModel):\n    pass\n"
        model = self.services.models.create(dev, "m", Task.TABULAR_CLASSIFICATION, "M", source)
        return dev, model["id"], train["id"], val["id"]

    def start_job(self, budget: dict, app: str = "app") -> tuple[Any, dict]:
        from chalicelib.entities import Task

        dev, model_id, train_id, val_id = self.setup_user_with_data()
        created = self.services.train_jobs.create_train_job(
            dev, app, Task.TABULAR_CLASSIFICATION, train_id, val_id, budget, model_ids=[model_id]
        )
        return dev, created

    def wait_for_job(self, dev: Any, app: str, statuses: tuple[str, ...] = ("STOPPED", "ERRORED"),
                     timeout: float = 60, workers_done: bool = True) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.services.train_jobs.get_train_job(dev, app)
            done = not workers_done or all(w["status"] != "RUNNING" for w in job["workers"])
            if job["status"] in statuses and done:
                return job
            time.sleep(0.2)
        raise AssertionError(f"the job did not reach {statuses} in {timeout} s: {job}")

    def executions(self) -> list[dict]:
        return self._sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]

    def wait_executions_done(self, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            executions = self.executions()
            if executions and all(e["status"] != "RUNNING" for e in executions):
                return executions
            time.sleep(0.2)
        raise AssertionError(f"executions still running: {self.executions()}")

