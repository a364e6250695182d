"""The local stand-in for AWS Batch: runs each trial message as a worker process
(``python -m kilele_worker run``), as many at once as ``local_max_parallel_trials`` allows."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from chalicelib.local.queue_consumer import QueueConsumer, log


class LocalTrialDispatcher:
    """Starts the worker entrypoint as a child process; if it exits without having answered
    its task token (it crashed or was killed), fails the token on its behalf."""

    def __init__(self, work_dir: Path, sfn_client: Any = None, python: str = sys.executable):
        self.work_dir = work_dir
        self.python = python
        self._sfn = sfn_client or boto3.client("stepfunctions")
        self._lock = threading.Lock()
        self._processes: dict[int, subprocess.Popen] = {}

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._processes)

    def dispatch(self, message: dict[str, Any]) -> str:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="trial-", suffix=".json", dir=self.work_dir)
        with os.fdopen(fd, "w") as f:
            json.dump(message, f)
        log_file = open(Path(path).with_suffix(".log"), "wb")
        process = subprocess.Popen(
            [self.python, "-m", "kilele_worker", "run", "--message-file", path],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() can end the whole tree
        )
        log_file.close()
        with self._lock:
            self._processes[process.pid] = process
        threading.Thread(target=self._reap, args=(process, message, path), daemon=True).start()
        return str(process.pid)

    def _reap(self, process: subprocess.Popen, message: dict[str, Any], path: str) -> None:
        code = process.wait()
        with self._lock:
            self._processes.pop(process.pid, None)
        if code != 0:
            self._fail_token(message, f"the worker process exited with code {code}")
        Path(path).unlink(missing_ok=True)

    def _fail_token(self, message: dict[str, Any], cause: str) -> None:
        try:
            self._sfn.send_task_failure(taskToken=message["task_token"], error="WorkerLost", cause=cause)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
                log.warning("trial-runner: could not fail the token: %s", e)
        except Exception as e:  # the emulated AWS is already gone (stack stopping)
            log.info("trial-runner: could not fail the token: %s", e)

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


class TrialRunner(QueueConsumer):
    """Consumes the trials queue and runs each message with :class:`LocalTrialDispatcher`."""

    name = "trial-runner"

    def __init__(self, queue_url: str, dispatcher: LocalTrialDispatcher, max_parallel: int):
        super().__init__(queue_url)
        self.dispatcher = dispatcher
        self.max_parallel = max_parallel

    def capacity(self) -> int:
        return self.max_parallel - self.dispatcher.running

    def handle(self, body: dict[str, Any]) -> None:
        self.dispatcher.dispatch(body)

    def stop(self) -> None:
        super().stop()
        self.dispatcher.terminate_all()


__all__ = ["LocalTrialDispatcher", "TrialRunner"]
