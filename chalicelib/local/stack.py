"""``kilele local up``: the whole platform on one machine, no AWS account.

Start order: the data directory (locked: one stack per directory), moto server (the AWS,
restored from the directory's snapshot), provisioning from chalicelib/resources.py, the
superadmin, recovery of the jobs the last stop interrupted (recovery.py), the API on 127.0.0.1,
then any local components (trial runner, endpoint runner, image builder, scheduler, Lambda shim)
registered in :data:`COMPONENT_FACTORIES`, and the watcher (watch.py). Stop order is the
reverse; moto takes a last snapshot as it stops. Ctrl-C, SIGTERM or ``kilele local down`` stop
everything; no process is left behind.
"""
from __future__ import annotations

import importlib
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from chalicelib import SERVICE_NAME, __version__
from chalicelib.local.data_dir import DataDir, DataDirBusy
from chalicelib.local.moto_server import MotoServer
from chalicelib.local.moto_snapshot import SnapshotRefused, read_header
from chalicelib.local.provision import Provisioned
from chalicelib.local.stopping import exit_now, stop_parts, timed
from chalicelib.resources import (
    LAMBDA_SHIM_QUEUE,
    MANAGED_IMAGE,
    SERVING_REQUESTS_QUEUE,
    STRESS_TEST,
    TRAIN_WORKER,
    TRIALS_QUEUE,
)
from chalicelib.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# moto accepts any credentials; these make sure no real ones are ever sent to it.
LOCAL_ACCESS_KEY = "kilele-local"
#: Where ``kilele local up`` keeps its state unless told otherwise (``--data-dir``).
DEFAULT_DATA_DIR = "~/.kilele/local"
#: moto's state is written this often (when it changed): a SIGKILL loses at most about this much.
DEFAULT_SNAPSHOT_SECONDS = 2.0
#: The most the stop waits for the components (stopped at once) before it goes on with the rest:
#: their own waits are bounded below it (the trial runner's workers get 5 s after SIGTERM).
COMPONENTS_STOP_SECONDS = 15.0


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

    def health(self) -> dict[str, Any]:
        return {"ok": True, "detail": "serving"}


def _endpoint_runner(context: StackContext) -> LocalComponent:
    return _EndpointsComponent(context.services.endpoints)


def _serving_consumer(context: StackContext) -> LocalComponent:
    from chalicelib.local.serving_consumer import ServingQueueConsumer

    services = context.services
    return ServingQueueConsumer(context.provisioned.queue_urls[SERVING_REQUESTS_QUEUE.name],
                                services.aws.client("sqs"), services.queues.process)


# Stand-ins for what moto cannot execute, started after the API is up (a new runner appends here).
def _scheduler(context: StackContext) -> LocalComponent:
    # The local scheduler twin (issue 12), built by the composition root: fires schedules in this process.
    return context.services.scheduler


COMPONENT_FACTORIES: list[Callable[[StackContext], LocalComponent]] = [
    _lambda_shim, _trial_runner, _endpoint_runner, _serving_consumer, _scheduler,
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
        "managed_image_state_machine_arn": provisioned.state_machine_arns[MANAGED_IMAGE.name],
        # A poll of the local builder reads a file: poll often, so an image's record is final soon after its build.
        "image_poll_seconds": min(settings.image_poll_seconds, 2),
        "trials_queue_url": provisioned.queue_urls[TRIALS_QUEUE.name],
        "public_api_url": api_url,
        "endpoints_uri": f"local://{work_dir / 'endpoints'}",
        "trial_dispatch_uri": f"local://{work_dir / 'trials'}",
    })


def _load_app():
    sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("app").app


class LocalStack:
    """The whole platform on this machine. With ``data_dir`` its state is restored from and kept
    in that directory (``reset``: start empty); without, it lives as long as the stack."""

    def __init__(self, port: int = 8000, moto_port: int = 0, threads: int = 8, settings: Optional[Settings] = None,
                 data_dir: Optional[Path] = None, reset: bool = False,
                 snapshot_seconds: float = DEFAULT_SNAPSHOT_SECONDS, aws_endpoint_url: Optional[str] = None):
        """``aws_endpoint_url``: an emulator already running (LocalStack) instead of a moto child
        (chalicelib/local/external_aws.py says what the stack then does without)."""
        self.port = port
        self.threads = threads
        self.base_settings = settings or Settings()
        self.data = DataDir(data_dir) if data_dir else None
        self.reset = reset
        if aws_endpoint_url:
            from chalicelib.local.external_aws import ExternalAws

            self.moto: Any = ExternalAws(aws_endpoint_url)
        else:
            self.moto = MotoServer(moto_port, state_dir=self.data.moto_dir if self.data else None,
                                   snapshot_seconds=snapshot_seconds)
        self.api = None
        self.s3_gate: Any = None  # the local twin of IAM's direct-transfer grant (chalicelib/local/s3_gate.py)
        self.components: list[LocalComponent] = []
        self.context: Optional[StackContext] = None
        self.recovery: Any = None  # what recovery.recover did at start-up, when there was saved state
        self.restored = False
        self.watcher: Any = None
        self.failure: Optional[str] = None  # why the stack stops on its own (see fail)
        self.finished = threading.Event()  # set by fail(), and by main's signal handlers
        self._previous_services: Any = None
        self._installed = False
        self._moto_lock = threading.Lock()
        self._work_dir: Any = None  # a work_dir.WorkDir while the stack runs

    def start(self) -> StackContext:
        from chalicelib import wiring

        if self.data:
            self.data.acquire()
        try:
            if self.data:
                if self.reset:
                    self.data.reset()
                self.restored = read_header(self.data.moto_dir) is not None
            self.moto.start()
            from chalicelib.adapters.aws import AwsClients
            from chalicelib.local.api_server import ApiServer
            from chalicelib.local.gateway import ChaliceWsgiApp
            from chalicelib.local.provision import provision
            from chalicelib.local.recovery import recover
            from chalicelib.local.watch import Watcher, health_overlay

            settings = local_settings(self.base_settings, self.moto.url)
            aws = AwsClients(settings.region, settings.aws_endpoint_url, settings.aws_access_key_id,
                             settings.aws_secret_access_key, settings.aws_service_endpoints)
            provisioned = provision(settings, aws)
            # IAM users move their direct/<name>/ files through the gate, which checks their grant;
            # an external emulator issues no keys it could check (external_aws.py): none then.
            if isinstance(self.moto, MotoServer):
                from chalicelib.local.s3_gate import S3Gate

                self.s3_gate = S3Gate(self.moto.url, settings.data_bucket, self.moto.iam_credentials)
                self.s3_gate.start()
                settings = settings.with_values(direct_s3_endpoint_url=self.s3_gate.url)
            # Bind the API first: its URL is the predictor URL inference jobs hand out.
            self.api = ApiServer(health_overlay(ChaliceWsgiApp(_load_app(), credentials_of=self.moto.iam_credentials),
                                                self.health), port=self.port, threads=self.threads)
            self._work_dir = _new_work_dir()
            work_dir = self._work_dir.path
            settings = adopt(settings, provisioned, self.api.url, work_dir)
            # Built images outlive the stack with its data dir: the same requirements are not built again.
            settings = settings.with_values(image_builder_uri=f"local://{(self.data.path if self.data else work_dir) / 'images'}")
            # The event log is kept like the rest of the state (issue 12): GET /events reads it after a restart.
            settings = settings.with_values(events_uri=f"local://{(self.data.path if self.data else work_dir) / 'events'}")
            settings = settings.with_values(scheduler_uri=f"local://{(self.data.path if self.data else work_dir) / 'schedules'}")
            # Continuous tests' metrics: the EMF documents CloudWatch would get, in metrics/ct-metrics.jsonl.
            settings = settings.with_values(ct_metrics_uri=f"local://{(self.data.path if self.data else work_dir) / 'metrics'}")
            services = wiring.build(settings, aws=aws)
            self._previous_services = wiring.install(services)
            self._installed = True
            self.context = StackContext(settings, self.moto.url, provisioned, self.api.url, work_dir, services)
            services.users.ensure_superadmin(settings.superadmin_email, settings.superadmin_password)
            if self.restored:  # before the API serves: no request sees a job the last stop interrupted
                self.recovery = recover(services, provisioned.queue_urls)
            self.api.start()
            for factory in COMPONENT_FACTORIES:
                component = factory(self.context)
                component.start(self.context)
                self.components.append(component)
            self.watcher = Watcher(self)
            self.watcher.start()
            if self.data:
                self.data.write_state(api_url=self.api.url, moto_url=self.moto.url, moto_pid=self.moto.pid,
                                      data_dir=str(self.data.path), version=__version__)
        except BaseException:
            self.stop()
            raise
        return self.context

    def health(self) -> dict[str, dict[str, Any]]:
        """Each component's ``{"ok", "detail"}`` (what ``GET /`` reports)."""
        report: dict[str, dict[str, Any]] = {
            "moto": self.moto.health(),
            "api": {"ok": bool(self.api and self.api.alive()), "detail": "serving" if self.api else "stopped"},
        }
        for component in list(self.components):
            health = getattr(component, "health", None)
            report[component.name] = health() if health else {"ok": True, "detail": "running"}
        if self.watcher:
            report[self.watcher.name] = self.watcher.health()
        if self.failure:
            report["stack"] = {"ok": False, "detail": f"stopping: {self.failure}"}
        return report

    def restart_moto(self) -> None:
        """Start moto again from its saved state after it died (the watcher calls it): trials
        that were running lose their executions, so they are ended and their jobs put right."""
        from chalicelib.local.provision import provision
        from chalicelib.local.recovery import MOTO_RESTARTED, recover

        with self._moto_lock:
            context = self.context
            if context is None:
                return
            context.services.trial_dispatcher.terminate_all()
            self.moto.start()
            provision(context.settings, context.services.aws)
            if self.data:
                self.data.write_state(api_url=self.api.url if self.api else None, moto_url=self.moto.url,
                                      moto_pid=self.moto.pid, data_dir=str(self.data.path), version=__version__)
        # In the watcher's own thread, which lives as long as the stack: an endpoint process
        # started again here dies with the thread that started it (PR_SET_PDEATHSIG).
        try:
            done = recover(context.services, context.provisioned.queue_urls, MOTO_RESTARTED)
            print(f"kilele: moto restarted; {done.summary()}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - the jobs stay as they are; GET / shows moto's health
            print(f"kilele: moto restarted, but its jobs could not be put right: {e}", file=sys.stderr, flush=True)

    def _mark_interrupted(self) -> None:
        # Before the trial runner ends its workers: their trials then say why they ended
        # (the workers' own "received SIGTERM" reports find them ended and change nothing).
        from chalicelib.local.recovery import STACK_STOPPED

        try:
            self.context.services.train_jobs.end_unfinished_trials(STACK_STOPPED)
        except Exception as e:  # noqa: BLE001 - moto may be what failed; the start-up recovery says it then
            print(f"kilele: could not mark the running trials: {e}", file=sys.stderr)

    def fail(self, reason: str) -> None:
        """Stop the whole stack because a part of it cannot be kept running (exit code 1)."""
        self.failure = reason
        self.finished.set()

    def stop(self) -> None:
        from chalicelib import wiring

        if self.watcher:
            self.watcher.halt()
        if self.components and self.context:
            timed("marking the running trials", self._mark_interrupted)
        # The components wait on nothing of each other's (each ends its own threads and
        # processes): all at once, within one bound, so a loaded machine pays the slowest, not the sum.
        stop_parts([(component.name, component.stop) for component in reversed(self.components)],
                   COMPONENTS_STOP_SECONDS)
        self.components.clear()
        if self.api:
            timed("the API", self.api.stop)
            self.api = None
        if self.context:
            try:
                timed("flushing metrics", self.context.services.close)  # what the API buffered, while moto runs
            except Exception as e:  # noqa: BLE001 - moto may be what failed; stop the rest anyway
                print(f"kilele: could not flush buffered metrics: {e}", file=sys.stderr)
            self.context = None
        if self._work_dir:  # after the runners stopped: nothing writes there any more
            self._work_dir.remove()
            self._work_dir = None
        if self._installed:
            wiring.install(self._previous_services)
            self._installed = False
        if self.s3_gate:
            self.s3_gate.stop()
            self.s3_gate = None
        with self._moto_lock:
            timed("moto (its last snapshot)", self.moto.stop)
        if self.watcher:
            self.watcher.stop()
            self.watcher = None
        if self.data:
            self.data.release()


def _new_work_dir() -> Any:
    """This stack's run-time directory, after removing those of stacks that were killed (their
    runners' and endpoints' files: a SIGKILLed stack cannot remove its own)."""
    from chalicelib.local.work_dir import WorkDir, remove_stale

    removed = remove_stale()
    if removed:
        print(f"kilele: removed what {len(removed)} stopped stack(s) left in {removed[0].parent}: "
              f"{', '.join(p.name for p in removed)}", file=sys.stderr, flush=True)
    return WorkDir()


def sandbox_line() -> str:
    """How model code (trials, endpoints) is confined here, in one line; starts with WARNING when
    the kernel or the identity cannot give all of it (see README, "Security model")."""
    from kilele.sandbox import isolation_line

    missing = isolation_line()
    if missing:
        return f"WARNING: {missing}"
    return "model code runs as a user of its own, with no network, in its own PID and mount namespaces"


def main(port: int = 8000, moto_port: int = 0, data_dir: Optional[str] = DEFAULT_DATA_DIR, reset: bool = False,
         snapshot_seconds: float = DEFAULT_SNAPSHOT_SECONDS, aws_endpoint_url: Optional[str] = None,
         dynamodb_endpoint_url: Optional[str] = None, exit: Optional[Callable[[int], None]] = None) -> int:
    """Run the stack in the foreground until Ctrl-C, SIGTERM (``kilele local down``) or a part of
    it that cannot be kept running; 0 after a requested stop, 1 after a failure, 2 when it
    could not start with this data directory. Once stopped, the process ends with that code at
    once (``exit``, default os._exit: see :func:`chalicelib.local.stopping.exit_now`)."""
    settings = Settings()
    if dynamodb_endpoint_url:
        settings = settings.with_values(aws_endpoint_url_dynamodb=dynamodb_endpoint_url)
    stack = LocalStack(port=port, moto_port=moto_port, data_dir=Path(data_dir) if data_dir else None, reset=reset,
                       snapshot_seconds=snapshot_seconds, settings=settings, aws_endpoint_url=aws_endpoint_url)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stack.finished.set())
    isolation = sandbox_line()
    if isolation.startswith("WARNING"):  # at start, in one plain line: what model code is not isolated from
        print(f"kilele: {isolation}", file=sys.stderr, flush=True)
    try:
        context = stack.start()
    except (SnapshotRefused, DataDirBusy) as e:
        print(f"kilele: the local stack did not start: {e}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:
        print(f"kilele: could not start the local stack: {e}", file=sys.stderr)
        return 1
    settings = context.settings
    warning = (
        "  WARNING: this is the default password; set KILELE_SUPERADMIN_PASSWORD on any shared machine\n"
        if settings.superadmin_password == Settings.model_fields["superadmin_password"].default
        else ""
    )
    state = (f"  data dir:   {stack.data.path} ({'restored' if stack.restored else 'new'}; "
             f"saved every {snapshot_seconds:g} s and at stop)\n" if stack.data else
             "  data dir:   none (the state is lost when the stack stops)\n")
    recovered = f"  recovered:  {stack.recovery.summary()}\n" if stack.recovery else ""
    print(
        f"{SERVICE_NAME} {__version__} local stack is up\n"
        f"  API:        {context.api_url}\n"
        f"  AWS (moto): {context.aws_endpoint_url}\n"
        f"{state}{recovered}"
        f"  sandbox:    {isolation}\n"
        f"  superadmin: {settings.superadmin_email}\n{warning}"
        "Press Ctrl-C (or run `kilele local down`) to stop.",
        flush=True,
    )
    try:
        stack.finished.wait()
    finally:
        if stack.failure:
            print(f"kilele: the local stack is stopping because {stack.failure}", file=sys.stderr, flush=True)
        print("stopping...", flush=True)
        stack.stop()
    code = 1 if stack.failure else 0
    # Every part is stopped and the state saved: what the interpreter's teardown would still do
    # (free the modules' memory) took 6-23 s of a loaded machine's time after the stop.
    exit_now(code, exit)
    return code


if __name__ == "__main__":  # python -m chalicelib.local.stack [port]
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000))
