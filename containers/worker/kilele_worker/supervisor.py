"""The supervisor: runs one trial and reports its outcome to Step Functions with the task token.

Trusted, holds the AWS credentials (from the environment; boto3 honours ``AWS_ENDPOINT_URL``).
The model runs in a child process (:mod:`kilele_worker.child`) without them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from kilele_worker import child as child_module
from kilele_worker import errors, sandbox
from kilele_worker.errors import TrialFailure
from kilele_worker.message import TrialMessage, TrialSpec
from kilele_worker.trial_log import TrialLog, utc_now_iso

POLL_SECONDS = 0.2
CAUSE_MAX_CHARS = 256
ERROR_MESSAGE_MAX_CHARS = 4000
RESULT_MAX_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
KILL_WAIT_SECONDS = 10.0
TOKEN_GONE_CODES = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}
STOPPED_JOB_STATUSES = {"STOPPED", "ERRORED"}
WORKDIR_ROOT_ENV = "KILELE_WORKER_WORKDIR_ROOT"
KEEP_WORKDIR_ENV = "KILELE_WORKER_KEEP_WORKDIR"


class TokenGone(Exception):
    """The execution no longer waits for this task token."""


class NotPending(Exception):
    """The trial item is not PENDING (``status`` is its current status, None if it is missing)."""

    def __init__(self, trial_id: str, status: Optional[str]):
        super().__init__(f"trial {trial_id} is {status or 'missing'}, not PENDING")
        self.status = status


class AwsClients:
    """The supervisor's boto3 clients (thread-safe; shared by the heartbeat thread)."""

    def __init__(self, session: Any = None):
        import boto3
        from botocore.config import Config

        session = session or boto3.session.Session()
        config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)
        self.s3 = session.client("s3", config=config)
        self.dynamodb = session.client("dynamodb", config=config)
        self.sfn = session.client("stepfunctions", config=config)


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(error).__name__
    return type(error).__name__


def _describe(error: Exception) -> str:
    return f"{_error_code(error)}: {error}"


class Monitor(threading.Thread):
    """Every ``heartbeat_seconds``: SendTaskHeartbeat, and read the train job's status.

    Sets :attr:`token_gone` when the execution no longer waits for the token and
    :attr:`stop_reason` when the job is STOPPED or ERRORED; sets ``wake`` on either."""

    def __init__(self, aws: AwsClients, token: str, trial: TrialSpec, log: TrialLog, wake: threading.Event):
        super().__init__(name=f"kilele-monitor-{trial.id}", daemon=True)
        self._aws, self._token, self._trial, self._log, self._wake = aws, token, trial, log, wake
        self._halt = threading.Event()
        self.token_gone: Optional[str] = None
        self.stop_reason: Optional[str] = None
        self._warned_missing_job = False

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.check_once()
            except Exception as e:  # noqa: BLE001 - the monitor must keep running
                self._log.worker(f"monitor check failed: {_describe(e)}")
            if self.token_gone or self.stop_reason:
                self._wake.set()
                return
            self._halt.wait(self._trial.heartbeat_seconds)

    def halt(self) -> None:
        self._halt.set()

    def check_once(self) -> None:
        try:
            self._aws.sfn.send_task_heartbeat(taskToken=self._token)
        except Exception as e:  # noqa: BLE001
            if _error_code(e) in TOKEN_GONE_CODES:
                self.token_gone = f"the execution no longer waits for this trial ({_error_code(e)})"
                return
            self._log.worker(f"heartbeat failed (will retry): {_describe(e)}")
        try:
            item = self._aws.dynamodb.get_item(
                TableName=self._trial.jobs_table, Key={"id": {"S": self._trial.train_job_id}},
                ConsistentRead=True, ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"},
            ).get("Item")
        except Exception as e:  # noqa: BLE001
            self._log.worker(f"reading the train job failed (will retry): {_describe(e)}")
            return
        if item is None:
            if not self._warned_missing_job:
                self._warned_missing_job = True
                self._log.worker(f"train job {self._trial.train_job_id} not found in {self._trial.jobs_table}")
            return
        status = item.get("status", {}).get("S")
        if status in STOPPED_JOB_STATUSES:
            self.stop_reason = f"train job {self._trial.train_job_id} is {status}"


@dataclass
class ModelRun:
    score: float
    train_seconds: float
    evaluate_seconds: float
    onnx: bool


class TrialRunner:
    def __init__(self, message: TrialMessage, aws: AwsClients, log: TrialLog,
                 stop_requested: Optional[threading.Event] = None):
        self.token = message.task_token
        self.trial = message.trial
        self.aws = aws
        self.log = log
        self.wake = threading.Event()
        self.stop_requested = stop_requested or threading.Event()
        self.started = time.monotonic()
        self.monitor: Optional[Monitor] = None
        self.user = sandbox.model_user()
        self.workdir: Optional[str] = None

    # -- the whole trial ---------------------------------------------------------------------

    def run(self) -> int:
        trial = self.trial
        self.log.worker(f"kilele-worker: trial {trial.id} of train job {trial.train_job_id}, "
                        f"model {trial.model_name or trial.model_id or ''} ({trial.model_class})")
        try:
            if not trial.is_describe:
                self._mark_running()
        except NotPending as not_pending:  # stopped, recorded, or taken by another worker
            return self._report_not_pending(not_pending)
        except Exception as e:  # noqa: BLE001
            return self._finish_failure(TrialFailure(errors.TRIAL_ERROR, f"could not mark the trial RUNNING: {_describe(e)}"))

        self.monitor = Monitor(self.aws, self.token, trial, self.log, self.wake)
        self.monitor.start()
        try:
            outcome: Any = self._run_model_and_upload()
        except TrialFailure as failure:
            outcome = failure
        except TokenGone as gone:
            outcome = gone
        except Exception as e:  # noqa: BLE001 - a bug or an AWS failure in the worker is still reported
            outcome = TrialFailure(errors.TRIAL_ERROR, f"the worker failed: {_describe(e)}")
        finally:
            self.monitor.halt()
            self.monitor.join(timeout=KILL_WAIT_SECONDS)  # no heartbeat after the report
            self._cleanup()

        if isinstance(outcome, TokenGone):
            self.log.worker(f"{outcome}; not reporting")
            self._upload_log()
            return errors.EXIT_TOKEN_GONE
        if isinstance(outcome, TrialFailure):
            return self._finish_failure(outcome)
        return self._finish_success(outcome)

    # -- steps ---------------------------------------------------------------------------------

    def _mark_running(self) -> None:
        names = {"#s": "status", "#t": "started_at"}
        try:
            self.aws.dynamodb.update_item(
                TableName=self.trial.trials_table, Key={"id": {"S": self.trial.id}},
                UpdateExpression="SET #s = :running, #t = :now",
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":running": {"S": "RUNNING"}, ":pending": {"S": "PENDING"},
                                           ":now": {"S": utc_now_iso()}},
            )
        except Exception as e:  # noqa: BLE001
            if _error_code(e) != "ConditionalCheckFailedException":
                raise
            item = self.aws.dynamodb.get_item(
                TableName=self.trial.trials_table, Key={"id": {"S": self.trial.id}}, ConsistentRead=True,
            ).get("Item")
            status = item.get("status", {}).get("S") if item else None
            raise NotPending(self.trial.id, status) from e
        self.log.worker("trial marked RUNNING")

    def _run_model_and_upload(self) -> dict:
        self._check_stop()
        workdir = self._prepare_workdir()
        self._download(workdir)
        self._check_dependencies()
        self._check_stop()
        run = self._run_child(workdir)
        return self._upload_outputs(workdir, run)

    def _prepare_workdir(self) -> str:
        root = os.environ.get(WORKDIR_ROOT_ENV) or None
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", self.trial.id)[:40]
        self.workdir = workdir = tempfile.mkdtemp(prefix=f"kilele-trial-{safe_id}-", dir=root)
        for name in ("input", "output", "scratch"):
            os.mkdir(os.path.join(workdir, name), 0o700)
        if self.user is not None:
            # The model user reads the inputs and writes only output/ and scratch/.
            os.chmod(workdir, 0o755)
            os.chmod(os.path.join(workdir, "input"), 0o755)
            for name in ("output", "scratch"):
                os.chown(os.path.join(workdir, name), self.user.pw_uid, self.user.pw_gid)
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
                                   f"could not download the {what} file s3://{trial.bucket}/{key}: {_describe(e)}") from e
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

    def _check_stop(self) -> None:
        monitor = self.monitor
        if monitor is not None and monitor.token_gone:
            raise TokenGone(monitor.token_gone)
        if monitor is not None and monitor.stop_reason:
            raise TrialFailure(errors.TRIAL_STOPPED, f"trial stopped: {monitor.stop_reason}")
        if self.stop_requested.is_set():
            raise TrialFailure(errors.TRIAL_STOPPED, "trial stopped: the worker received SIGTERM")

    def _run_child(self, workdir: str) -> ModelRun:
        trial = self.trial
        output_dir = os.path.join(workdir, "output")
        spec = {
            "model_path": self.paths["model"], "model_class": trial.model_class,
            "knobs": trial.knobs, "train_args": trial.train_args,
            "train_path": self.paths.get("train"), "val_path": self.paths.get("val"),
            "output_dir": output_dir, "task": trial.task, "mode": trial.kind,
        }
        spec_path = os.path.join(workdir, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        os.chmod(spec_path, 0o644)

        scratch = os.path.join(workdir, "scratch")
        extra = {"TMPDIR": scratch}
        if self.user is not None:
            extra["HOME"] = scratch  # the supervisor's home is not the model user's
        env = sandbox.child_environment(extra=extra)
        memory_limit = trial.memory_limit_mb
        if memory_limit and trial.gpu_count:
            self.log.worker(f"GPU trial: no address-space limit (CUDA reserves more than {memory_limit} MB "
                            "of address space); the container's memory limit applies")
            memory_limit = None
        self.log.worker(f"starting the model process (timeout {trial.timeout_seconds:g} s, memory limit "
                        f"{str(memory_limit) + ' MB' if memory_limit else 'none'}, "
                        f"user {self.user.pw_name if self.user else 'same as the worker'})")
        watch = sandbox.MemoryWatch()
        watch.start()
        process = sandbox.spawn_child(spec_path, cwd=scratch, env=env, memory_limit_mb=memory_limit, user=self.user)
        pgid = process.pid  # start_new_session: the child leads its own process group
        pump = threading.Thread(target=self._pump, args=(process.stdout,), name="kilele-model-output", daemon=True)
        pump.start()
        deadline = time.monotonic() + trial.timeout_seconds
        status = rusage = None
        killed_for: Optional[Any] = None
        try:
            while True:
                watch.sample(process.pid)
                pid, wait_status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    status, rusage = wait_status, usage
                    break
                monitor = self.monitor
                if monitor is not None and monitor.token_gone:
                    killed_for = TokenGone(monitor.token_gone)
                elif monitor is not None and monitor.stop_reason:
                    killed_for = TrialFailure(errors.TRIAL_STOPPED, f"trial stopped: {monitor.stop_reason}")
                elif self.stop_requested.is_set():
                    killed_for = TrialFailure(errors.TRIAL_STOPPED, "trial stopped: the worker received SIGTERM")
                elif time.monotonic() >= deadline:
                    killed_for = TrialFailure(errors.TRIAL_TIMEOUT,
                                              f"the model ran longer than timeout_seconds={trial.timeout_seconds:g}")
                if killed_for is not None:
                    sandbox.kill_group(pgid)
                    status, rusage = self._reap(process)
                    break
                self.wake.wait(POLL_SECONDS)
        finally:
            sandbox.kill_group(pgid)  # strays the model started
            if process.returncode is None and status is None:
                self._reap(process)
            pump.join(timeout=5)
        model_seconds = trial.timeout_seconds - max(0.0, deadline - time.monotonic())
        if killed_for is not None:
            self.log.worker(f"killed the model process after {model_seconds:.2f} s: {killed_for}")
            raise killed_for
        if status is not None:
            process.returncode = os.waitstatus_to_exitcode(status)
        return self._read_result(output_dir, process.returncode, watch, rusage)

    def _reap(self, process: subprocess.Popen):
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            except ChildProcessError:
                return None, None
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                return status, usage
            time.sleep(0.02)
        self.log.worker(f"the model process {process.pid} did not die within {KILL_WAIT_SECONDS:g} s of SIGKILL")
        return None, None

    def _pump(self, stream) -> None:
        try:
            with stream:
                for chunk in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
                    self.log.model(chunk.decode("utf-8", "replace").rstrip("\r\n"))
        except (OSError, ValueError):
            pass

    def _read_result(self, output_dir: str, returncode: Optional[int], watch: sandbox.MemoryWatch, rusage) -> ModelRun:
        owner = self.user.pw_uid if self.user else None
        try:
            raw = sandbox.read_child_file(output_dir, child_module.RESULT_FILE, RESULT_MAX_BYTES, owner)
        except sandbox.UnsafeOutput as e:
            raise TrialFailure(errors.TRIAL_ERROR, f"the model process left an unusable result: {e}") from e
        result = None
        if raw is not None:
            try:
                result = json.loads(raw)
            except ValueError:
                result = None
        if isinstance(result, dict) and result.get("status") == "ok" and self.trial.is_describe:
            if not isinstance(result.get("knob_config"), dict):
                raise TrialFailure(errors.TRIAL_ERROR, "the model process wrote no knob config")
            return result["knob_config"]  # type: ignore[return-value]
        if isinstance(result, dict) and result.get("status") == "ok":
            try:
                run = ModelRun(score=_finite(result["score"]), train_seconds=_seconds(result["train_seconds"]),
                               evaluate_seconds=_seconds(result["evaluate_seconds"]), onnx=bool(result.get("onnx")))
            except (KeyError, TypeError, ValueError) as e:
                raise TrialFailure(errors.TRIAL_ERROR, f"the model process wrote an invalid result: {e}") from e
            if returncode:
                self.log.worker(f"warning: the model process exited with {_exit_text(returncode)} after its result")
            return run
        if isinstance(result, dict) and result.get("status") == "error":
            error_type = str(result.get("error_type") or "Error")[:200]
            message = str(result.get("error_message") or "")
            text = f"{error_type}: {message}" if message else error_type
            if error_type == "MemoryError":
                raise TrialFailure(errors.OUT_OF_MEMORY, _oom_text(self.trial, f"the model raised {text}"))
            raise TrialFailure(errors.TRIAL_ERROR, text)
        # No result: the process died (a signal, os._exit, the OOM killer).
        max_rss_kb = getattr(rusage, "ru_maxrss", 0) if rusage is not None else 0
        if returncode is not None and returncode < 0:
            signum = -returncode
            if signum in sandbox.MEMORY_SIGNALS and watch.memory_related(self.trial.memory_limit_mb, max_rss_kb):
                raise TrialFailure(errors.OUT_OF_MEMORY,
                                   _oom_text(self.trial, f"the model process was killed by {_signal_name(signum)}"))
            raise TrialFailure(errors.TRIAL_ERROR, f"the model process was killed by {_signal_name(signum)}")
        raise TrialFailure(errors.TRIAL_ERROR, f"the model process exited with {_exit_text(returncode)} without "
                                               "a result (did the model call os._exit or sys.exit?)")

    def _upload_outputs(self, workdir: str, run: Any) -> dict:
        trial = self.trial
        if trial.is_describe:
            return {"knob_config": run}
        output_dir = os.path.join(workdir, "output")
        owner = self.user.pw_uid if self.user else None
        uploads = [("parameters", child_module.PARAMS_FILE, trial.params_key)]
        onnx_key = None
        if run.onnx:
            if trial.onnx_key:
                uploads.append(("ONNX graph", child_module.ONNX_FILE, trial.onnx_key))
                onnx_key = trial.onnx_key
            else:
                self.log.worker("the model exported ONNX but the message has no onnx_key: not uploaded")
        for what, name, key in uploads:
            try:
                f = sandbox.open_child_file(output_dir, name, owner)
            except sandbox.UnsafeOutput as e:
                raise TrialFailure(errors.TRIAL_ERROR, f"the model process left unusable {what}: {e}") from e
            if f is None:
                raise TrialFailure(errors.TRIAL_ERROR, f"the model process wrote no {what}")
            with f:
                size = os.fstat(f.fileno()).st_size
                try:
                    self.aws.s3.upload_fileobj(f, trial.bucket, key)
                except Exception as e:  # noqa: BLE001
                    raise TrialFailure(errors.TRIAL_ERROR,
                                       f"could not upload the {what} to s3://{trial.bucket}/{key}: {_describe(e)}") from e
            self.log.worker(f"uploaded {what} to s3://{trial.bucket}/{key} ({size} bytes)")
        return {
            "trial_id": trial.id,
            "status": "COMPLETED",
            "score": run.score,
            "train_seconds": run.train_seconds,
            "evaluate_seconds": run.evaluate_seconds,
            "model_seconds": run.train_seconds + run.evaluate_seconds,
            "worker_seconds": None,  # filled in just before reporting
            "params_key": trial.params_key,
            "logs_key": trial.logs_key,
            "onnx_key": onnx_key,
        }

    # -- reporting -------------------------------------------------------------------------------

    def _finish_success(self, output: dict) -> int:
        if self.trial.is_describe:
            self.log.worker("model described; reporting its knob config")
            self._upload_log()
            try:
                self.aws.sfn.send_task_success(taskToken=self.token, output=json.dumps(output))
            except Exception as e:  # noqa: BLE001
                return self._report_error("SendTaskSuccess", e)
            return errors.EXIT_REPORTED
        output["worker_seconds"] = time.monotonic() - self.started
        self.log.worker(f"trial COMPLETED: score {output['score']:.6g} (model {output['model_seconds']:.2f} s, "
                        f"worker {output['worker_seconds']:.2f} s); reporting success")
        self._upload_log()
        try:
            self.aws.sfn.send_task_success(taskToken=self.token, output=json.dumps(output))
        except Exception as e:  # noqa: BLE001
            return self._report_error("SendTaskSuccess", e)
        return errors.EXIT_REPORTED

    def _finish_failure(self, failure: TrialFailure) -> int:
        self.log.worker(f"trial failed with {failure.error}: {failure.message}")
        self.log.worker(f"reporting {failure.error} (worker {time.monotonic() - self.started:.2f} s)")
        self._upload_log()
        try:
            if self.trial.is_describe:  # no trial item: the workflow reads the log instead
                return self._send_failure(failure)
            self.aws.dynamodb.update_item(
                TableName=self.trial.trials_table, Key={"id": {"S": self.trial.id}},
                UpdateExpression="SET error_type = :t, error_message = :m",
                ExpressionAttributeValues={":t": {"S": failure.error},
                                           ":m": {"S": failure.message[:ERROR_MESSAGE_MAX_CHARS] or failure.error}},
            )
        except Exception as e:  # noqa: BLE001 - the report matters more
            _stdout(f"could not write the error into the trial item: {_describe(e)}")
        return self._send_failure(failure)

    def _report_not_pending(self, not_pending: NotPending) -> int:
        """Another worker (a duplicate delivery) owns a RUNNING trial: leave it alone, it reports.
        A trial already stopped or recorded: tell the waiting execution TrialStopped, but do not
        overwrite the trial's log or error."""
        self.log.worker(str(not_pending))
        if not_pending.status == "RUNNING":
            self.log.worker("another worker runs this trial (a duplicate message?): not reporting")
            return errors.EXIT_REPORTED
        self.log.worker(f"reporting {errors.TRIAL_STOPPED}")
        return self._send_failure(TrialFailure(errors.TRIAL_STOPPED, str(not_pending)))

    def _send_failure(self, failure: TrialFailure) -> int:
        try:
            self.aws.sfn.send_task_failure(taskToken=self.token, error=failure.error,
                                           cause=failure.message[:CAUSE_MAX_CHARS])
        except Exception as e:  # noqa: BLE001
            return self._report_error("SendTaskFailure", e)
        return errors.EXIT_REPORTED

    def _report_error(self, call: str, error: Exception) -> int:
        if _error_code(error) in TOKEN_GONE_CODES:
            _stdout(f"{call}: the execution no longer waits for this trial ({_error_code(error)})")
            return errors.EXIT_TOKEN_GONE
        _stdout(f"{call} failed: {_describe(error)}")
        return errors.EXIT_NOT_REPORTED

    def _upload_log(self) -> None:
        try:
            self.aws.s3.put_object(Bucket=self.trial.bucket, Key=self.trial.logs_key,
                                   Body=self.log.text().encode("utf-8", "replace"),
                                   ContentType="text/plain; charset=utf-8")
        except Exception as e:  # noqa: BLE001 - still report the outcome
            _stdout(f"could not upload the trial log to s3://{self.trial.bucket}/{self.trial.logs_key}: {_describe(e)}")

    def _cleanup(self) -> None:
        if self.workdir and not os.environ.get(KEEP_WORKDIR_ENV):
            shutil.rmtree(self.workdir, ignore_errors=True)


def _suffix(key: str) -> str:
    match = re.search(r"(\.[A-Za-z0-9]{1,8})$", key)
    return match.group(1).lower() if match else ""


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"score {value!r} is not a finite number")
    return float(value)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < float("inf")):
        raise ValueError(f"{value!r} is not a duration")
    return float(value)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _exit_text(returncode: Optional[int]) -> str:
    if returncode is None:
        return "an unknown status"
    if returncode < 0:
        return _signal_name(-returncode)
    return f"code {returncode}"


def _oom_text(trial: TrialSpec, what: str) -> str:
    limit = f"memory_limit_mb={trial.memory_limit_mb}" if trial.memory_limit_mb else "the container's memory"
    return f"{what}: out of memory ({limit})"


def _stdout(text: str) -> None:
    print(f"{utc_now_iso()} [worker] {text}", flush=True)


def run_trial(message: TrialMessage, aws: Optional[AwsClients] = None, log: Optional[TrialLog] = None,
              stop_requested: Optional[threading.Event] = None) -> int:
    """Run one trial and report it; returns the process exit code (see :mod:`kilele_worker.errors`)."""
    from kilele_worker.trial_log import default_echo

    return TrialRunner(message, aws or AwsClients(), log or TrialLog(echo=default_echo()), stop_requested).run()
