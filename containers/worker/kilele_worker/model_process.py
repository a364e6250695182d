"""The model process: start :mod:`kilele_worker.child` in the sandbox, watch it, reap it, read it.

:class:`ModelProcess` writes the child's ``spec.json``, starts the child (its own process group,
a scrubbed environment, a memory limit, maybe another user; see :mod:`kilele_worker.sandbox`),
copies its output lines into the trial log, polls it every ``POLL_SECONDS`` and kills its whole
group on a timeout or when the supervisor's ``interrupt`` says so, then turns what it left
(``result.json``, its exit status, its memory peaks) into a :class:`ModelRun`, a knob config
(``kind`` "describe") or a :class:`~kilele_worker.errors.TrialFailure`.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from kilele import sandbox as kilele_sandbox

from kilele_worker import child as child_module
from kilele_worker import errors, sandbox
from kilele_worker.cpu_limit import CpuLimit, thread_environment
from kilele_worker.errors import TrialFailure
from kilele_worker.message import TrialSpec
from kilele_worker.settings import WorkerSettings
from kilele_worker.spare import ModelSpare
from kilele_worker.trial_log import TrialLog

POLL_SECONDS = 0.2
RESULT_MAX_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
KILL_WAIT_SECONDS = 10.0

#: Called every poll: an exception to end the run with (the model is killed first), or None.
Interrupt = Callable[[], Optional[BaseException]]


@dataclass
class ModelRun:
    score: float
    train_seconds: float
    evaluate_seconds: float
    onnx: bool


class ModelProcess:
    """One run of the model in a child process, in ``workdir`` (``input/`` holds ``paths``,
    ``output/`` and ``scratch/`` are the child's)."""

    def __init__(self, trial: TrialSpec, paths: dict[str, str], workdir: str, *, log: TrialLog,
                 settings: WorkerSettings, wake: threading.Event, interrupt: Interrupt,
                 spare: Optional[ModelSpare] = None):
        """``spare``: a pre-started model process in ``workdir`` (:mod:`kilele_worker.spare`),
        used instead of starting one if it is still there."""
        self.trial, self.paths, self.workdir = trial, paths, workdir
        self.log, self.settings, self.environ = log, settings, settings.environ
        self.wake, self.interrupt = wake, interrupt
        self.spare = spare
        self.output_dir = os.path.join(workdir, "output")
        #: The model process's own user, once started (None: it kept the worker's).
        self.uid: Optional[int] = None

    def run(self) -> Union[ModelRun, dict]:
        """A :class:`ModelRun` (a knob config dict for ``kind`` "describe"); raises
        :class:`TrialFailure`, or what ``interrupt`` returned."""
        trial = self.trial
        spec_path = self._write_spec()
        memory_limit = trial.memory_limit_mb
        if memory_limit and trial.gpu_count:
            self.log.worker(f"GPU trial: no address-space limit (CUDA reserves more than {memory_limit} MB "
                            "of address space); the container's memory limit applies")
            memory_limit = None
        cpu_seconds = sandbox.cpu_seconds_for(trial.timeout_seconds)
        watch = sandbox.MemoryWatch()
        watch.start()
        cpu_limit: Optional[CpuLimit] = None
        started = self._hand_to_spare(spec_path, memory_limit, cpu_seconds) if self.spare is not None else None
        if started is not None:
            process, how = started
        else:
            process, cpu_limit, how = self._spawn(spec_path, memory_limit)
        self.log.worker(f"started the model process (timeout {trial.timeout_seconds:g} s, memory limit "
                        f"{str(memory_limit) + ' MB' if memory_limit else 'none'}, CPU time limit "
                        f"{cpu_seconds} s, {how}, "
                        f"user {self.uid if self.uid is not None else 'same as the worker'}"
                        f"{', no network' if self.settings.sandbox_isolate else ''})")
        pgid = process.pid  # a session of its own: the child leads its own process group
        pump = threading.Thread(target=self._pump, args=(process.stdout,), name="kilele-model-output", daemon=True)
        pump.start()
        deadline = time.monotonic() + trial.timeout_seconds
        status = rusage = None
        killed_for: Optional[BaseException] = None
        exited = _exit_notice(process.pid)
        try:
            while True:
                watch.sample(process.pid)
                pid, wait_status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    status, rusage = wait_status, usage
                    break
                killed_for = self.interrupt()
                if killed_for is None and time.monotonic() >= deadline:
                    killed_for = TrialFailure(errors.TRIAL_TIMEOUT,
                                              f"the model ran longer than timeout_seconds={trial.timeout_seconds:g}")
                if killed_for is not None:
                    sandbox.kill_group(pgid)
                    status, rusage = self._reap(process)
                    break
                self._pause(exited)
        finally:
            sandbox.kill_group(pgid)  # strays the model started
            if process.returncode is None and status is None:
                self._reap(process)
            if exited is not None:
                os.close(exited)
            # Without a PID namespace, what the model started in another session is still there.
            kilele_sandbox.kill_user(self.uid)
            if cpu_limit is not None:
                cpu_limit.release()
            pump.join(timeout=5)
        model_seconds = trial.timeout_seconds - max(0.0, deadline - time.monotonic())
        if killed_for is not None:
            self.log.worker(f"killed the model process after {model_seconds:.2f} s: {killed_for}")
            raise killed_for
        if status is not None:
            process.returncode = os.waitstatus_to_exitcode(status)
        return self._read_result(process.returncode, watch, rusage)

    def _hand_to_spare(self, spec_path: str, memory_limit: Optional[int], cpu_seconds: int):
        """(the spare's process, words for the log) once it has the trial, or None if it is gone
        (then a model process is started the usual way)."""
        spare = self.spare
        inputs = [path for path in self.paths.values() if os.path.exists(path)]
        try:
            spare.hand(spec_path, inputs, memory_bytes=memory_limit * 1024 * 1024 if memory_limit else None,
                       cpu_seconds=cpu_seconds)
        except OSError as e:
            self.log.worker(f"the pre-started model process is gone ({e}); starting one")
            spare.discard(remove_workdir=False)
            self.spare = None
            return None
        self.uid = spare.uid
        return spare.process, "CPU rate limit none, pre-started (imports done before the trial)"

    def _spawn(self, spec_path: str, memory_limit: Optional[int]):
        """(a new model process, its CPU rate limit or None, words for the log)."""
        trial = self.trial
        scratch = os.path.join(self.workdir, "scratch")
        # Its own temp and home directory (removed with the work directory); a user name for
        # getpass, as the user has no passwd entry.
        extra = {"TMPDIR": scratch, "HOME": scratch, "USER": "kilele-model", "LOGNAME": "kilele-model"}
        cpu_millicores = getattr(trial, "cpu_limit_millicores", None)
        cpu_limit = CpuLimit(cpu_millicores) if cpu_millicores else None
        extra.update(thread_environment(cpu_limit))
        env = sandbox.child_environment(self.environ, extra=extra)
        inputs = [path for path in (*self.paths.values(), spec_path) if os.path.exists(path)]
        confined = sandbox.confinement(self.workdir, inputs=inputs, memory_limit_mb=memory_limit,
                                       timeout_seconds=trial.timeout_seconds, settings=self.settings)
        process = sandbox.spawn_child(spec_path, confined=confined, env=env)
        # At once: the confining entry is still starting, no model code has been imported yet.
        cpu_rate = cpu_limit.apply(process.pid) if cpu_limit else "none"
        self.uid = kilele_sandbox.run_uid(process.pid, confined)
        return process, cpu_limit, f"CPU rate limit {cpu_rate}"

    def _pause(self, exited: Optional[int]) -> None:
        """Until the next poll: at most POLL_SECONDS, less if the model process exits (its pidfd
        becomes readable) or the supervisor is woken."""
        if exited is None:
            self.wake.wait(POLL_SECONDS)
        elif not self.wake.is_set():
            select.select([exited], [], [], POLL_SECONDS)

    def _write_spec(self) -> str:
        trial = self.trial
        if trial.kind == "stress_test":
            return self._write_stress_spec()
        spec = {
            "model_path": self.paths["model"], "model_class": trial.model_class,
            "knobs": trial.knobs, "train_args": trial.train_args,
            "train_path": self.paths.get("train"), "val_path": self.paths.get("val"),
            "output_dir": self.output_dir, "task": trial.task, "mode": trial.kind,
        }
        spec_path = os.path.join(self.workdir, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        os.chmod(spec_path, 0o644)
        return spec_path

    def _write_stress_spec(self) -> str:
        """The engine's config with its file names made paths of ``input/``."""
        trial = self.trial
        config = json.loads(json.dumps(trial.config))
        config["data_info"]["ref_path"] = self.paths["ref"]
        config["data_info"]["eval_path"] = self.paths["eval"]
        spec = {"mode": "stress_test", "config": config, "output_dir": self.output_dir,
                "test_run_id": trial.test_run_id, "project_id": trial.project_id}
        if trial.continuous:  # a continuous test: its mode, and the bins' earlier rows if any
            spec["continuous"] = trial.continuous
            spec["history_path"] = self.paths.get("history")
            spec["sources_path"] = self.paths.get("sources")  # a scheduled firing's new data
        if "params" in self.paths:  # a Kilele trial: the child rebuilds it (kilele_worker.trial_model)
            spec["kilele_model"] = {"model_path": self.paths["model"], "model_class": trial.model_class,
                                    "params_path": self.paths["params"], "knobs": trial.knobs}
        else:
            config["model_info"] = {"path": self.paths["model"]} if "model" in self.paths else {}
        spec_path = os.path.join(self.workdir, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        os.chmod(spec_path, 0o644)
        return spec_path

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

    def _read_result(self, returncode: Optional[int], watch: sandbox.MemoryWatch, rusage) -> Union[ModelRun, dict]:
        trial = self.trial
        try:
            raw = sandbox.read_child_file(self.output_dir, child_module.RESULT_FILE, RESULT_MAX_BYTES, self.uid)
        except sandbox.UnsafeOutput as e:
            raise TrialFailure(errors.TRIAL_ERROR, f"the model process left an unusable result: {e}") from e
        result = None
        if raw is not None:
            try:
                result = json.loads(raw)
            except ValueError:
                result = None
        if isinstance(result, dict) and result.get("status") == "ok" and trial.kind == "stress_test":
            return result
        if isinstance(result, dict) and result.get("status") == "ok" and trial.is_describe:
            if not isinstance(result.get("knob_config"), dict):
                raise TrialFailure(errors.TRIAL_ERROR, "the model process wrote no knob config")
            return result["knob_config"]
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
                raise TrialFailure(errors.OUT_OF_MEMORY, _oom_text(trial, f"the model raised {text}"))
            raise TrialFailure(errors.TRIAL_ERROR, text)
        # No result: the process died (a signal, os._exit, the OOM killer).
        max_rss_kb = getattr(rusage, "ru_maxrss", 0) if rusage is not None else 0
        if returncode is not None and returncode < 0:
            signum = -returncode
            if signum in sandbox.MEMORY_SIGNALS and watch.memory_related(trial.memory_limit_mb, max_rss_kb):
                raise TrialFailure(errors.OUT_OF_MEMORY,
                                   _oom_text(trial, f"the model process was killed by {_signal_name(signum)}"))
            raise TrialFailure(errors.TRIAL_ERROR, f"the model process was killed by {_signal_name(signum)}")
        raise TrialFailure(errors.TRIAL_ERROR, f"the model process exited with {_exit_text(returncode)} without "
                                               "a result (did the model call os._exit or sys.exit?)")


def _exit_notice(pid: int) -> Optional[int]:
    """A pidfd of ``pid`` (readable once it exits), or None where the kernel has none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


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


__all__ = ["ModelProcess", "ModelRun", "POLL_SECONDS", "KILL_WAIT_SECONDS"]
