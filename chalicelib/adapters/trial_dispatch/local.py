"""Local trial dispatch, the twin of ``batch.py`` beside this file: runs each trial message as a
worker process (``python -m kilele_worker run``); the local stack's trial runner
(chalicelib/local/trial_runner.py) feeds it from the trials queue.

Each worker dies with this process (``PR_SET_PDEATHSIG``, SIGKILL; started from one lasting
thread, as the signal follows the thread that forked), and its model process dies with it (the
sandbox's own PDEATHSIG). Each worker works in a job directory of its own, removed when it exits
however it ended, so a killed worker leaves no files behind."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Optional

from kilele.sandbox import LastingThread, die_with_parent_preexec

from chalicelib.ports import TaskTokens

#: Where the worker puts its per-trial work directories (kilele_worker.settings.WORKDIR_ROOT_ENV).
WORKDIR_ROOT_ENV = "KILELE_WORKER_WORKDIR_ROOT"

log = logging.getLogger("kilele.local")


class LocalTrialDispatcher:
    """Starts the worker entrypoint as a child process; if it exits without having answered
    its task token (it crashed or was killed), fails the token on its behalf."""

    def __init__(self, work_dir: Path, tokens: TaskTokens, python: str = sys.executable,
                 environment: Optional[Mapping[str, str]] = None):
        """``environment``: the worker's whole environment (its AWS endpoint and credentials
        included; None inherits this process's)."""
        self.work_dir = work_dir
        self.python = python
        self._tokens = tokens
        self._environment = dict(environment) if environment is not None else None
        self._lock = threading.Lock()
        self._processes: dict[int, subprocess.Popen] = {}
        self._spawner: Optional[LastingThread] = None

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._processes)

    def dispatch(self, message: dict[str, Any]) -> str:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        job_dir = tempfile.mkdtemp(prefix="trial-", dir=self.work_dir)  # 0700: the message holds the token
        path = os.path.join(job_dir, "message.json")
        with open(path, "w") as f:
            json.dump(message, f)
        environment = dict(os.environ if self._environment is None else self._environment)
        environment[WORKDIR_ROOT_ENV] = job_dir
        log_file = open(job_dir + ".log", "wb")
        with self._lock:
            if self._spawner is None:
                self._spawner = LastingThread("kilele-trial-spawner")
            spawner = self._spawner
        try:
            process = spawner.call(lambda: subprocess.Popen(
                [self.python, "-m", "kilele_worker", "run", "--message-file", path],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() can end the whole tree
                env=environment,
                preexec_fn=die_with_parent_preexec(signal.SIGKILL),
            ))
        finally:
            log_file.close()
        with self._lock:
            self._processes[process.pid] = process
        threading.Thread(target=self._reap, args=(process, message, job_dir), daemon=True).start()
        return str(process.pid)

    def _reap(self, process: subprocess.Popen, message: dict[str, Any], job_dir: str) -> None:
        code = process.wait()
        with self._lock:
            self._processes.pop(process.pid, None)
        if code != 0:
            self._fail_token(message, f"the worker process exited with code {code}")
        shutil.rmtree(job_dir, ignore_errors=True)  # the message and whatever a killed worker left

    def _fail_token(self, message: dict[str, Any], cause: str) -> None:
        try:
            self._tokens.fail(message["task_token"], "WorkerLost", cause)
        except Exception as e:  # noqa: BLE001 - the emulated AWS may already be gone (stack stopping)
            log.info("trial dispatch: could not fail the token: %s", e)

    def terminate_all(self, grace_seconds: float = 5.0) -> None:
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


__all__ = ["LocalTrialDispatcher"]
