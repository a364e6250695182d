"""The supervisor: runs one trial (or one model description) and reports it with the task token.

Orchestration only. The steps, in order: claim the run (:mod:`kilele_worker.reporting`), start
the heartbeat monitor, download the inputs, check the dependencies, run the model in its child
process (:mod:`kilele_worker.model_process`), upload the outputs, report (the log, then
``SendTaskSuccess``, or ``error.json`` then ``SendTaskFailure``).

Trusted, holds the AWS credentials (:mod:`kilele_worker.aws`); the model runs in a child process
without them. The worker never writes the trial record: the platform's trial loop is its only
writer, from what the worker reports. A stopped train job stops the slot's execution, so the
execution no longer waits for the token: the next heartbeat says so and the trial ends.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from typing import Any, Optional

from kilele_worker import child as child_module
from kilele_worker import ct_sources, errors, sandbox
from kilele_worker.aws import AwsClients, describe
from kilele_worker.errors import TokenGone, TrialFailure
from kilele_worker.heartbeats import Monitor
from kilele_worker.message import TrialMessage, TrialSpec
from kilele_worker.model_process import KILL_WAIT_SECONDS, ModelProcess, ModelRun
from kilele_worker.reporting import Reporter
from kilele_worker.settings import WorkerSettings
from kilele_worker.start import report_start
from kilele_worker.spare import ModelSpare
from kilele_worker.trial_log import TrialLog, utc_now_iso


class TrialRunner:
    def __init__(self, message: TrialMessage, aws: AwsClients, log: TrialLog, settings: WorkerSettings,
                 stop_requested: Optional[threading.Event] = None, spare: Optional[ModelSpare] = None):
        """``spare``: a pre-started model process (:mod:`kilele_worker.spare`; the local stack's
        warm workers have one), used if the run's kind suits it, else discarded."""
        self.token = message.task_token
        self.trial = message.trial
        self.aws = aws
        self.log = log
        self.settings = settings
        self.reporter = Reporter(aws, message.task_token, message.trial, log)
        self.wake = threading.Event()
        self.stop_requested = stop_requested or threading.Event()
        self.started = time.monotonic()
        self.started_at = utc_now_iso()
        self.monitor: Optional[Monitor] = None
        self.model_uid: Optional[int] = None  # the model process's own user, once it ran
        self.workdir: Optional[str] = None
        self.paths: dict[str, str] = {}
        self.spare = spare if spare is not None and ModelSpare.suits(self.trial) else None
        if spare is not None and self.spare is None:
            self.log.worker(f"the pre-started model process does not take a {self.trial.kind}: "
                            "a model process is started for it")
            spare.discard()

    # -- the whole trial ---------------------------------------------------------------------

    def run(self) -> int:
        trial = self.trial
        self.log.worker(f"kilele-worker: {trial.kind} {trial.id} of train job {trial.train_job_id}, "
                        f"model {trial.model_name or trial.model_id or ''} ({trial.model_class})")
        try:
            claimed = self.reporter.claim(self.started_at)
        except Exception as e:  # noqa: BLE001
            return self._finish_failure(TrialFailure(errors.TRIAL_ERROR, f"could not claim the trial: {describe(e)}"))
        if not claimed:  # a duplicate delivery: the claim's owner runs and reports it
            self.log.worker(f"another worker has claimed {trial.id} (s3://{trial.bucket}/{trial.claim_key}; "
                            "a duplicate message): not running it, not reporting")
            return errors.EXIT_NOT_MINE
        self.log.worker("trial claimed")
        if trial.run_token_key:
            try:  # the heartbeat timeout counts from here, not from when the message was queued
                self.token = self.reporter.token = report_start(self.aws, self.token, trial, self.started_at)
            except TokenGone as gone:
                self.log.worker(f"{gone}; not running")
                self.reporter.upload_log()
                return errors.EXIT_TOKEN_GONE
            except Exception as e:  # noqa: BLE001 - the queue task is answered: the run's state times out
                self.log.worker(f"could not start the run: {describe(e)}; not running")
                self.reporter.upload_log()
                return errors.EXIT_NOT_REPORTED
            self.log.worker("start reported; heartbeats on the run's token")

        self.monitor = Monitor(self.aws, self.token, trial, self.log, self.wake,
                               upload_log=self.reporter.upload_log_if_changed,
                               log_upload_seconds=self.settings.log_upload_seconds,
                               settle_seconds=self.settings.token_settle_seconds)
        self.monitor.start()
        try:
            outcome: Any = self._run_model_and_upload()
        except (TrialFailure, TokenGone) as stopped:
            outcome = stopped
        except Exception as e:  # noqa: BLE001 - a bug or an AWS failure in the worker is still reported
            outcome = TrialFailure(errors.TRIAL_ERROR, f"the worker failed: {describe(e)}")
        finally:
            self.monitor.halt()
            self.monitor.join(timeout=KILL_WAIT_SECONDS)  # no heartbeat after the report
            self._cleanup()

        if isinstance(outcome, TokenGone):
            self.log.worker(f"{outcome}; not reporting")
            self.reporter.upload_log()
            return errors.EXIT_TOKEN_GONE
        if isinstance(outcome, TrialFailure):
            return self._finish_failure(outcome)
        return self._finish_success(outcome)

    # -- steps ---------------------------------------------------------------------------------

    def _run_model_and_upload(self) -> dict:
        self._check_stop()
        workdir = self._prepare_workdir()
        self._download(workdir)
        self._check_dependencies()
        self._check_stop()
        model = ModelProcess(self.trial, self.paths, workdir, log=self.log, settings=self.settings,
                             wake=self.wake, interrupt=self._interruption, spare=self.spare)
        try:
            run = model.run()
        finally:
            self.model_uid = model.uid
        return self._upload_outputs(workdir, run)

    def _prepare_workdir(self) -> str:
        if self.spare is not None:  # made with the spare, which is confined to it
            self.workdir = self.spare.workdir
            return self.workdir
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", self.trial.id)[:40]
        self.workdir = workdir = tempfile.mkdtemp(prefix=f"kilele-trial-{safe_id}-", dir=self.settings.workdir_root)
        # The sandbox gives the model's own user output/ and scratch/, and read access to the rest
        # of this directory (kilele_worker.sandbox.confinement).
        for name in ("input", "output", "scratch"):
            os.mkdir(os.path.join(workdir, name), 0o700)
        return workdir

    def _download(self, workdir: str) -> None:
        trial = self.trial
        model_name = os.path.basename(trial.model_key)
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.py", model_name):
            model_name = "model.py"
        self.paths = {
            "model": os.path.join(workdir, "input", model_name),
            "train": os.path.join(workdir, "input", "train" + _suffix(trial.train_dataset_key)),
            "val": os.path.join(workdir, "input", "val" + _suffix(trial.val_dataset_key)),
        }
        wanted = [("model", trial.model_key)]
        if not trial.is_describe:
            wanted += [("train", trial.train_dataset_key), ("val", trial.val_dataset_key)]
        for what, key in wanted:
            started = time.monotonic()
            try:
                self.aws.s3.download_file(trial.bucket, key, self.paths[what])
            except Exception as e:  # noqa: BLE001
                raise TrialFailure(errors.TRIAL_ERROR,
                                   f"could not download the {what} file s3://{trial.bucket}/{key}: {describe(e)}") from e
            os.chmod(self.paths[what], 0o644)
            self.log.worker(f"downloaded {what} s3://{trial.bucket}/{key} "
                            f"({os.path.getsize(self.paths[what])} bytes, {time.monotonic() - started:.2f} s)")
            self._check_stop()

    def _check_dependencies(self) -> None:
        missing, warnings = sandbox.check_dependencies(self.trial.dependencies)
        for warning in warnings:
            self.log.worker(f"warning: dependency {warning}")
        if missing:
            raise TrialFailure(errors.DEPENDENCY_ERROR,
                               f"dependencies not installed in this image: {', '.join(missing)}")
        if self.trial.dependencies:
            self.log.worker(f"dependencies present: {', '.join(sorted(self.trial.dependencies))}")

    def _interruption(self) -> Optional[BaseException]:
        """Why the run must end now (the model process is killed first), or None."""
        monitor = self.monitor
        if monitor is not None and monitor.token_gone:
            return TokenGone(monitor.token_gone)
        if self.stop_requested.is_set():
            return TrialFailure(errors.TRIAL_STOPPED, "trial stopped: the worker received SIGTERM")
        return None

    def _check_stop(self) -> None:
        interruption = self._interruption()
        if interruption is not None:
            raise interruption

    def _upload_outputs(self, workdir: str, run: Any) -> dict:
        trial = self.trial
        if trial.is_describe:
            return {"knob_config": run}
        assert isinstance(run, ModelRun)
        uploads = [("parameters", child_module.PARAMS_FILE, trial.params_key)]
        onnx_key = None
        if run.onnx:
            if trial.onnx_key:
                uploads.append(("ONNX graph", child_module.ONNX_FILE, trial.onnx_key))
                onnx_key = trial.onnx_key
            else:
                self.log.worker("the model exported ONNX but the message has no onnx_key: not uploaded")
        self._upload_child_files(workdir, uploads)
        return {
            "trial_id": trial.id,
            "status": "COMPLETED",
            "score": run.score,
            "train_seconds": run.train_seconds,
            "evaluate_seconds": run.evaluate_seconds,
            "model_seconds": run.train_seconds + run.evaluate_seconds,
            "worker_seconds": None,  # filled in just before reporting
            "started_at": self.started_at,
            "params_key": trial.params_key,
            "logs_key": trial.logs_key,
            "onnx_key": onnx_key,
        }

    # -- reporting -------------------------------------------------------------------------------

    def _upload_child_files(self, workdir: str, uploads: list[tuple[str, str, str]]) -> None:
        """Upload ``(what, file name, key)`` files the model process wrote into its output
        folder; a missing or unsafe file (a link, someone else's) fails the run."""
        output_dir = os.path.join(workdir, "output")
        owner = self.model_uid
        bucket = self.trial.bucket
        for what, name, key in uploads:
            try:
                f = sandbox.open_child_file(output_dir, name, owner)
            except sandbox.UnsafeOutput as e:
                raise TrialFailure(errors.TRIAL_ERROR, f"the model process left an unusable {what}: {e}") from e
            if f is None:
                raise TrialFailure(errors.TRIAL_ERROR, f"the model process wrote no {what}")
            with f:
                size = os.fstat(f.fileno()).st_size
                try:
                    self.aws.s3.upload_fileobj(f, bucket, key)
                except Exception as e:  # noqa: BLE001
                    raise TrialFailure(errors.TRIAL_ERROR,
                                       f"could not upload the {what} to s3://{bucket}/{key}: {describe(e)}") from e
            self.log.worker(f"uploaded {what} to s3://{bucket}/{key} ({size} bytes)")

    def _finish_success(self, output: dict) -> int:
        if self.trial.is_describe:
            self.log.worker("model described; reporting its knob config")
            return self.reporter.succeed(output)
        output["worker_seconds"] = time.monotonic() - self.started
        self.log.worker(f"trial COMPLETED: score {output['score']:.6g} (model {output['model_seconds']:.2f} s, "
                        f"worker {output['worker_seconds']:.2f} s); reporting success")
        return self.reporter.succeed(output)

    def _finish_failure(self, failure: TrialFailure) -> int:
        worker_seconds = time.monotonic() - self.started
        self.log.worker(f"{self.trial.kind} failed with {failure.error}: {failure.message}")
        self.log.worker(f"reporting {failure.error} (worker {worker_seconds:.2f} s)")
        return self.reporter.fail(failure, self.started_at, worker_seconds)

    def _cleanup(self) -> None:
        if self.spare is not None and not self.spare.handed:  # the run ended before the model
            self.spare.discard(remove_workdir=False)
        if self.workdir and not self.settings.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class StressTestRunner(TrialRunner):
    """kind "stress_test": download the data (and the model file, or a trial's model file and
    parameters), run the engine in the model process (model code is imported only there), upload
    the results and the report under ``results_prefix``, answer with a small summary."""

    def _download(self, workdir: str) -> None:
        spec = self.trial
        data_info = spec.config["data_info"]
        wanted = [("ref", data_info["ref_path"], spec.ref_key), ("eval", data_info["eval_path"], spec.eval_key)]
        if spec.is_trial_model:
            model_name = os.path.basename(spec.model_key)
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.py", model_name) or model_name in (
                    data_info["ref_path"], data_info["eval_path"], "params.npz"):
                model_name = "kilele_model.py"
            wanted += [("model", model_name, spec.model_key), ("params", "params.npz", spec.params_key)]
        elif spec.model_key:
            wanted.append(("model", spec.config["model_info"]["path"], spec.model_key))
        if spec.continuous.get("history_key"):  # a continuous test's bins' earlier rows
            wanted.append(("history", "ct_history.parquet", spec.continuous["history_key"]))
        self.paths = {}
        for what, name, key in wanted:
            path = self.paths[what] = os.path.join(workdir, "input", name)
            started = time.monotonic()
            try:
                self.aws.s3.download_file(spec.bucket, key, path)
            except Exception as e:  # noqa: BLE001
                raise TrialFailure(errors.TRIAL_ERROR,
                                   f"could not download the {what} file s3://{spec.bucket}/{key}: {describe(e)}") from e
            os.chmod(path, 0o644)
            self.log.worker(f"downloaded {what} s3://{spec.bucket}/{key} "
                            f"({os.path.getsize(path)} bytes, {time.monotonic() - started:.2f} s)")
            self._check_stop()
        if spec.continuous.get("source_prefixes"):  # the eval file is a scheduled firing's manifest
            self.paths["sources"] = self._download_sources(workdir)

    def _download_sources(self, workdir: str) -> str:
        """The files a scheduled firing's sources manifest names (kilele_worker.ct_sources)."""
        spec = self.trial

        def download(key: str, path: str) -> None:
            try:
                self.aws.s3.download_file(spec.bucket, key, path)
            except Exception as e:  # noqa: BLE001
                raise TrialFailure(errors.TRIAL_ERROR,
                                   f"could not download the new data s3://{spec.bucket}/{key}: {describe(e)}") from e
            self._check_stop()

        try:
            return ct_sources.fetch(self.paths["eval"], spec.continuous["source_prefixes"], download,
                                    os.path.join(workdir, "input", "sources"), self.log.worker)
        except ct_sources.SourcesError as e:
            raise TrialFailure(errors.TRIAL_ERROR, str(e)) from e

    def _upload_outputs(self, workdir: str, run: Any) -> dict:
        spec = self.trial
        names = list(child_module.STRESS_TABLES)
        if run.get("has_report"):
            names.append(child_module.REPORT_FILE)
        if spec.continuous:  # only the files a continuous test writes, whatever the child says
            names += [name for name in run.get("extra_files") or () if name in child_module.CT_FILES]
        self._upload_child_files(workdir, [(name, name, spec.results_prefix + name) for name in names])
        summary = {k: v for k, v in run.items() if k != "status"}
        return {"job_id": spec.id, **summary, "results_prefix": spec.results_prefix, "started_at": self.started_at}

    def _finish_success(self, output: dict) -> int:
        output["worker_seconds"] = time.monotonic() - self.started
        self.log.worker(f"stress test done: {output.get('num_test_cases')} test cases, severity "
                        f"{output.get('severity')} (worker {output['worker_seconds']:.2f} s); reporting success")
        return self.reporter.succeed(output)


def _suffix(key: str) -> str:
    match = re.search(r"(\.[A-Za-z0-9]{1,8})$", key)
    return match.group(1).lower() if match else ""


def run_trial(message: TrialMessage, aws: Optional[AwsClients] = None, log: Optional[TrialLog] = None,
              stop_requested: Optional[threading.Event] = None, settings: Optional[WorkerSettings] = None,
              spare: Optional[ModelSpare] = None) -> int:
    """Run one trial and report it; returns the process exit code (see :mod:`kilele_worker.errors`).
    ``spare``: a pre-started model process (see :class:`TrialRunner`)."""
    from kilele_worker.trial_log import default_echo

    runner_class = StressTestRunner if message.trial.kind == "stress_test" else TrialRunner
    try:
        runner = runner_class(message, aws or AwsClients(), log or TrialLog(echo=default_echo()),
                              settings or WorkerSettings.from_environ(), stop_requested, spare)
        return runner.run()
    finally:
        if spare is not None and not spare.handed:  # a duplicate delivery, a failed claim...
            spare.discard()
