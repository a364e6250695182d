"""``kilele local up``: the whole platform on one machine, no AWS account.

Start order: moto server (the AWS), provisioning from chalicelib/resources.py, the
superadmin, the API on 127.0.0.1, then any local components (trial runner, endpoint runner,
image builder, scheduler, Lambda shim) registered in :data:`COMPONENT_FACTORIES`. Stop order
is the reverse. Ctrl-C or SIGTERM stops everything; no process is left behind.
"""
from __future__ import annotations

import importlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

from chalicelib import SERVICE_NAME, __version__
from chalicelib.local.moto_server import MotoServer
from chalicelib.local.provision import Provisioned
from chalicelib.resources import LAMBDA_SHIM_QUEUE, TRAIN_WORKER, TRIALS_QUEUE
from chalicelib.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "kilele-local", "AWS_SECRET_ACCESS_KEY": "kilele-local"}


@dataclass
class StackContext:
    """What a local component needs to know about the running stack."""

    settings: Settings
    aws_endpoint_url: str
    provisioned: Provisioned
    api_url: str
    work_dir: Path


class LocalComponent(Protocol):
    """A stand-in for an AWS service moto cannot execute (runs trials, endpoints, builds...)."""

    name: str

    def start(self, context: StackContext) -> None: ...

    def stop(self) -> None: ...


def _lambda_shim(context: StackContext) -> LocalComponent:
    from chalicelib.local.lambda_shim import LambdaShim

    return LambdaShim(context.provisioned.queue_urls[LAMBDA_SHIM_QUEUE.name])


def _trial_runner(context: StackContext) -> LocalComponent:
    from chalicelib.local.trial_runner import LocalTrialDispatcher, TrialRunner

    return TrialRunner(
        context.provisioned.queue_urls[TRIALS_QUEUE.name],
        LocalTrialDispatcher(context.work_dir / "trials"),
        max_parallel=context.settings.local_max_parallel_trials,
    )


def _endpoint_runner(context: StackContext) -> LocalComponent:
    from chalicelib.wiring import endpoint_runner

    return endpoint_runner(context.settings)  # the API's own runner: stopping it ends every endpoint


# Stand-ins for what moto cannot execute, started after the API is up (a new runner appends here).
COMPONENT_FACTORIES: list[Callable[[StackContext], LocalComponent]] = [_lambda_shim, _trial_runner, _endpoint_runner]


def _serving_consumer(context: StackContext) -> LocalComponent:
    from chalicelib.local.serving_consumer import ServingQueueConsumer
    from chalicelib.resources import SERVING_REQUESTS_QUEUE

    return ServingQueueConsumer(context.provisioned.queue_urls[SERVING_REQUESTS_QUEUE.name])


COMPONENT_FACTORIES.append(_serving_consumer)  # the queue API's consumer (an SQS-triggered Lambda on AWS)


def _point_aws_at(endpoint_url: str, region: str) -> None:
    """Make boto3, pynamodb and child processes use moto, never a real account."""
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)


def _adopt(provisioned: Provisioned, api_url: str, work_dir: Path) -> Settings:
    """Point the settings at the local queue, state machine, API URL and endpoint runner
    (infra sets the same settings on AWS)."""
    os.environ["KILELE_TRAIN_WORKER_STATE_MACHINE_ARN"] = provisioned.state_machine_arns[TRAIN_WORKER.name]
    os.environ["KILELE_TRIALS_QUEUE_URL"] = provisioned.queue_urls[TRIALS_QUEUE.name]
    os.environ["KILELE_PUBLIC_API_URL"] = api_url
    os.environ["KILELE_ENDPOINTS_URI"] = f"local://{work_dir / 'endpoints'}"
    get_settings.cache_clear()
    from chalicelib.wiring import services

    services.cache_clear()
    return get_settings()


def _load_app():
    sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("app").app


class LocalStack:
    def __init__(self, port: int = 8000, moto_port: int = 0, threads: int = 8):
        self.port = port
        self.threads = threads
        self.moto = MotoServer(moto_port)
        self.api = None
        self.components: list[LocalComponent] = []
        self.context: Optional[StackContext] = None

    def start(self) -> StackContext:
        settings = get_settings()
        _point_aws_at(self.moto.url, settings.region)
        self.moto.start()
        try:
            from chalicelib.local.api_server import ApiServer
            from chalicelib.local.gateway import ChaliceWsgiApp
            from chalicelib.local.provision import provision
            from chalicelib.wiring import services

            provisioned = provision(settings, endpoint_url=self.moto.url)
            # Bind the API first: its URL is the predictor URL inference jobs hand out.
            self.api = ApiServer(ChaliceWsgiApp(_load_app()), port=self.port, threads=self.threads)
            work_dir = Path(tempfile.mkdtemp(prefix="kilele-local-"))
            settings = _adopt(provisioned, self.api.url, work_dir)
            services().users.ensure_superadmin(settings.superadmin_email, settings.superadmin_password)
            self.api.start()
            self.context = StackContext(settings, self.moto.url, provisioned, self.api.url, work_dir)
            for factory in COMPONENT_FACTORIES:
                component = factory(self.context)
                component.start(self.context)
                self.components.append(component)
        except BaseException:
            self.stop()
            raise
        return self.context

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()
        self.components.clear()
        if self.context:
            shutil.rmtree(self.context.work_dir, ignore_errors=True)
        if self.api:
            self.api.stop()
            self.api = None
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
