"""``kilele local up``: the whole platform on one machine, no AWS account.

Start order: moto server (the AWS), provisioning from chalicelib/resources.py, the
superadmin, the API on 127.0.0.1, then any local components (trial runner, endpoint runner,
image builder, scheduler, Lambda shim) registered in :data:`COMPONENT_FACTORIES`. Stop order
is the reverse. Ctrl-C or SIGTERM stops everything; no process is left behind.
"""
from __future__ import annotations

import importlib
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from chalicelib import SERVICE_NAME, __version__
from chalicelib.local.moto_server import MotoServer
from chalicelib.local.provision import Provisioned
from chalicelib.resources import LAMBDA_SHIM_QUEUE, SERVING_REQUESTS_QUEUE, STRESS_TEST, TRAIN_WORKER, TRIALS_QUEUE
from chalicelib.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# moto accepts any credentials; these make sure no real ones are ever sent to it.
LOCAL_ACCESS_KEY = "kilele-local"


@dataclass
class StackContext:
    """What a local component needs to know about the running stack."""

    settings: Settings
    aws_endpoint_url: str
    provisioned: Provisioned
    api_url: str
    work_dir: Path
    services: Any  # chalicelib.wiring.Services, the API's own


class LocalComponent(Protocol):
    """A stand-in for an AWS service moto cannot execute (runs trials, endpoints, builds...)."""

    name: str

    def start(self, context: StackContext) -> None: ...

    def stop(self) -> None: ...


def _lambda_shim(context: StackContext) -> LocalComponent:
    from chalicelib.local.lambda_shim import LambdaShim
    from chalicelib.workflows.handlers import invoke

    services = context.services
    return LambdaShim(context.provisioned.queue_urls[LAMBDA_SHIM_QUEUE.name], services.aws.client("sqs"),
                      services.tokens, invoke)


def _trial_runner(context: StackContext) -> LocalComponent:
    from chalicelib.local.trial_runner import TrialRunner

    services = context.services
    return TrialRunner(context.provisioned.queue_urls[TRIALS_QUEUE.name], services.aws.client("sqs"),
                       services.trial_dispatcher, max_parallel=context.settings.local_max_parallel_trials)


class _EndpointsComponent:
    """The API's own endpoint runner, stopped with the stack (which ends every endpoint)."""

    name = "endpoint-runner"

    def __init__(self, runner: Any):
        self._runner = runner

    def start(self, context: StackContext) -> None:
        return None

    def stop(self) -> None:
        self._runner.stop_all()


def _endpoint_runner(context: StackContext) -> LocalComponent:
    return _EndpointsComponent(context.services.endpoints)


def _serving_consumer(context: StackContext) -> LocalComponent:
    from chalicelib.local.serving_consumer import ServingQueueConsumer

    services = context.services
    return ServingQueueConsumer(context.provisioned.queue_urls[SERVING_REQUESTS_QUEUE.name],
                                services.aws.client("sqs"), services.queues.process)


# Stand-ins for what moto cannot execute, started after the API is up (a new runner appends here).
COMPONENT_FACTORIES: list[Callable[[StackContext], LocalComponent]] = [
    _lambda_shim, _trial_runner, _endpoint_runner, _serving_consumer,
]


def local_settings(base: Settings, moto_url: str) -> Settings:
    """``base`` pointed at the emulated AWS, never a real account."""
    return base.with_values(**{
        "aws_endpoint_url": moto_url, "aws_access_key_id": LOCAL_ACCESS_KEY, "aws_secret_access_key": LOCAL_ACCESS_KEY,
    })


def adopt(settings: Settings, provisioned: Provisioned, api_url: str, work_dir: Path) -> Settings:
    """The local queue, state machine, API URL and runners (infra sets the same settings on AWS),
    and what one API process allows: every app row is written through it, so it may cache them."""
    return settings.with_values(**{
        "serving_state_cache": settings.serving_state_cache is not False,
        "train_worker_state_machine_arn": provisioned.state_machine_arns[TRAIN_WORKER.name],
        "stress_test_state_machine_arn": provisioned.state_machine_arns[STRESS_TEST.name],
        "trials_queue_url": provisioned.queue_urls[TRIALS_QUEUE.name],
        "public_api_url": api_url,
        "endpoints_uri": f"local://{work_dir / 'endpoints'}",
        "trial_dispatch_uri": f"local://{work_dir / 'trials'}",
    })


def _load_app():
    sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("app").app


class LocalStack:
    def __init__(self, port: int = 8000, moto_port: int = 0, threads: int = 8, settings: Optional[Settings] = None):
        self.port = port
        self.threads = threads
        self.base_settings = settings or Settings()
        self.moto = MotoServer(moto_port)
        self.api = None
        self.components: list[LocalComponent] = []
        self.context: Optional[StackContext] = None
        self._previous_services: Any = None
        self._installed = False

    def start(self) -> StackContext:
        from chalicelib import wiring

        self.moto.start()
        try:
            from chalicelib.adapters.aws import AwsClients
            from chalicelib.local.api_server import ApiServer
            from chalicelib.local.gateway import ChaliceWsgiApp
            from chalicelib.local.provision import provision

            settings = local_settings(self.base_settings, self.moto.url)
            aws = AwsClients(settings.region, settings.aws_endpoint_url, settings.aws_access_key_id,
                             settings.aws_secret_access_key)
            provisioned = provision(settings, aws)
            # Bind the API first: its URL is the predictor URL inference jobs hand out.
            self.api = ApiServer(ChaliceWsgiApp(_load_app()), port=self.port, threads=self.threads)
            work_dir = Path(tempfile.mkdtemp(prefix="kilele-local-"))
            settings = adopt(settings, provisioned, self.api.url, work_dir)
            services = wiring.build(settings, aws=aws)
            self._previous_services = wiring.install(services)
            self._installed = True
            services.users.ensure_superadmin(settings.superadmin_email, settings.superadmin_password)
            self.api.start()
            self.context = StackContext(settings, self.moto.url, provisioned, self.api.url, work_dir, services)
            for factory in COMPONENT_FACTORIES:
                component = factory(self.context)
                component.start(self.context)
                self.components.append(component)
        except BaseException:
            self.stop()
            raise
        return self.context

    def stop(self) -> None:
        from chalicelib import wiring

        for component in reversed(self.components):
            component.stop()
        self.components.clear()
        if self.api:
            self.api.stop()
            self.api = None
        if self.context:
            self.context.services.close()  # flush what the API buffered, while moto still runs
            shutil.rmtree(self.context.work_dir, ignore_errors=True)
        if self._installed:
            wiring.install(self._previous_services)
            self._installed = False
        self.moto.stop()


def main(port: int = 8000, moto_port: int = 0) -> int:
    """Run the stack in the foreground until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = LocalStack(port=port, moto_port=moto_port)
    try:
        context = stack.start()
    except OSError as e:
        print(f"kilele: could not start the local stack: {e}", file=sys.stderr)
        return 1
    settings = context.settings
    warning = (
        "  WARNING: this is the default password; set KILELE_SUPERADMIN_PASSWORD on any shared machine\n"
        if settings.superadmin_password == Settings.model_fields["superadmin_password"].default
        else ""
    )
    print(
        f"{SERVICE_NAME} {__version__} local stack is up\n"
        f"  API:        {context.api_url}\n"
        f"  AWS (moto): {context.aws_endpoint_url}\n"
        f"  superadmin: {settings.superadmin_email}\n{warning}"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        print("stopping...", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":  # python -m chalicelib.local.stack [port]
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000))
