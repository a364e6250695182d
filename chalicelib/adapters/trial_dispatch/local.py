"""Local trial dispatch, the twin of ``batch.py`` beside this file: runs each trial message as a
worker process (``python -m kilele_worker run``); the local stack's trial runner
(chalicelib/local/trial_runner.py) feeds it from the trials queue.

Each worker dies with this process (``PR_SET_PDEATHSIG``, SIGKILL; started from one lasting
thread, as the signal follows the thread that forked), and its model process dies with it (the
sandbox's own PDEATHSIG). Each worker works in a job directory of its own, removed when it exits
however it ended, so a killed worker leaves no files behind.

With ``warm_workers`` > 0 (the local stack's default), trials go to workers started ahead
(``warm.py``: forked by a zygote that imported once, each with its sandboxed model process
already started); one worker and one model process per trial still, as on AWS. A trial finds
no warm worker ready (the zygote failed, or is still importing past the wait) -> it starts a
worker process as above.

A trial whose message names a managed image (``image.ref``: ``venv://<dir>``, built by the local
image builder) runs cold in that image's interpreter: the warm workers were forked by a zygote
of the runtime's interpreter, which cannot become another. The worker's sandbox applies the
same (it starts the model process with the interpreter it runs in)."""
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
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from kilele.sandbox import LastingThread, die_with_parent_preexec

from chalicelib.adapters.trial_dispatch.warm import WarmPool, WarmWorker, Zygote, worker_environment
from chalicelib.ports import TaskTokens

#: Where the worker puts its per-trial work directories (kilele_worker.settings.WORKDIR_ROOT_ENV).
WORKDIR_ROOT_ENV = "KILELE_WORKER_WORKDIR_ROOT"
#: How the local image builder refers to an image (chalicelib.adapters.images.local.IMAGE_REF_SCHEME).
VENV_SCHEME = "venv://"

log = logging.getLogger("kilele.local")


class LocalTrialDispatcher:
    """Starts the worker entrypoint as a child process; if it exits without having answered
    its task token (it crashed or was killed), fails the token on its behalf."""

    def __init__(self, work_dir: Path, tokens: TaskTokens, python: str = sys.executable,
                 environment: Optional[Mapping[str, str]] = None, warm_workers: int = 0,
                 pool: Optional[WarmPool] = None):
        """``environment``: the worker's whole environment (its AWS endpoint and credentials
        included; None inherits this process's). ``warm_workers``: how many workers to keep
        started ahead (0: none, each trial starts a worker process). ``pool``: the warm workers
        (tests; default: forked by a zygote, ``warm.py``)."""
        self.work_dir = work_dir
        self.python = python
        self._tokens = tokens
        self._environment = dict(environment) if environment is not None else None
        self._lock = threading.Lock()
        self._processes: dict[int, subprocess.Popen] = {}
        self._warm_running: dict[int, WarmWorker] = {}
        self._spawner: Optional[LastingThread] = None
        self.warm_workers = warm_workers
        self._zygote = Zygote(work_dir, python, self._environment, self._lasting_thread) if warm_workers else None
        self._pool = pool or (WarmPool(self._zygote.new_worker, warm_workers) if self._zygote else None)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._processes) + len(self._warm_running)

    def start(self) -> None:
        """Start the warm workers now rather than at the first trial (the zygote's imports take
        a few seconds; the local stack calls this as its trial runner starts)."""
        if self._pool is not None:
            self._pool.fill()

    def _lasting_thread(self) -> LastingThread:
        with self._lock:
            if self._spawner is None:
                self._spawner = LastingThread("kilele-trial-spawner")
            return self._spawner

    def dispatch(self, message: dict[str, Any]) -> str:
        try:
            python = image_python(message["trial"].get("image"))
        except ImageUnavailable as e:  # the trial fails with why (a failure leaves a trace)
            log.warning("trial dispatch: %s", e)
            self._fail_token(message, str(e), error="ImageUnavailable")
            return "image-unavailable"
        worker = self._pool.take() if self._pool is not None and python is None else None
        if worker is not None:
            handed = self._hand(worker, message)
            if handed is not None:
                return handed
        self.work_dir.mkdir(parents=True, exist_ok=True)
        job_dir = tempfile.mkdtemp(prefix="trial-", dir=self.work_dir)  # 0700: the message holds the token
        path = os.path.join(job_dir, "message.json")
        with open(path, "w") as f:
            json.dump(message, f)
        environment = dict(os.environ if self._environment is None else self._environment)
        environment[WORKDIR_ROOT_ENV] = job_dir
        log_file = open(job_dir + ".log", "wb")
        spawner = self._lasting_thread()
        try:
            process = spawner.call(lambda: subprocess.Popen(
                [python or self.python, "-m", "kilele_worker", "run", "--message-file", path],
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

    def _hand(self, worker: WarmWorker, message: dict[str, Any]) -> Optional[str]:
        """The trial to a warm worker; its pid, or None if it died meanwhile (then the caller
        starts a worker process)."""
        path = os.path.join(worker.job_dir, "message.json")
        with open(path, "w") as f:
            json.dump(message, f)
        with self._lock:
            self._warm_running[worker.pid] = worker
        try:
            worker.hand(path, worker_environment(self._environment, worker.job_dir, WORKDIR_ROOT_ENV))
        except OSError as e:
            log.info("trial dispatch: a warm worker was gone (%s); starting a worker process", e)
            with self._lock:
                self._warm_running.pop(worker.pid, None)
            worker.discard()
            return None
        threading.Thread(target=self._reap_warm, args=(worker, message), daemon=True).start()
        return str(worker.pid)

    def _reap_warm(self, worker: WarmWorker, message: dict[str, Any]) -> None:
        worker.wait()
        with self._lock:
            self._warm_running.pop(worker.pid, None)
        if worker.exit_code != 0:
            code = "no exit code (it was killed)" if worker.exit_code is None else f"code {worker.exit_code}"
            self._fail_token(message, f"the worker process exited with {code}")
        shutil.rmtree(worker.job_dir, ignore_errors=True)

    def _reap(self, process: subprocess.Popen, message: dict[str, Any], job_dir: str) -> None:
        code = process.wait()
        with self._lock:
            self._processes.pop(process.pid, None)
        if code != 0:
            self._fail_token(message, f"the worker process exited with code {code}")
        shutil.rmtree(job_dir, ignore_errors=True)  # the message and whatever a killed worker left

    def _fail_token(self, message: dict[str, Any], cause: str, error: str = "WorkerLost") -> None:
        try:
            self._tokens.fail_run(message, error, cause)
        except Exception as e:  # noqa: BLE001 - the emulated AWS may already be gone (stack stopping)
            log.info("trial dispatch: could not fail the token: %s", e)

    def terminate_all(self, grace_seconds: float = 5.0) -> None:
        """SIGTERM to every running worker, SIGKILL to those still there ``grace_seconds`` later
        (one grace for all, not one each); then the warm workers that got no trial and the
        zygote are killed (their files removed)."""
        with self._lock:
            processes = list(self._processes.values())
            warm = list(self._warm_running.values())
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        for worker in warm:
            worker.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for worker in warm:
            if not worker.wait(max(0.0, deadline - time.monotonic())):
                worker.signal(signal.SIGKILL)
                worker.wait(10)
        if self._pool is not None:
            self._pool.stop()
        if self._zygote is not None:
            self._zygote.stop()


def image_python(image: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The interpreter of a managed image a message names (None: the runtime's); a reference
    this machine cannot run (an ECR image URI) or a virtual environment that is gone raises
    :class:`ImageUnavailable`, so the trial fails saying why instead of running elsewhere."""
    if not image:
        return None
    ref = str(image.get("ref") or "")
    if not ref.startswith(VENV_SCHEME):
        raise ImageUnavailable(f"managed image {image.get('name')!r} ({ref!r}) is not a local image: "
                               "the local stack runs only images its own builder made")
    python = Path(ref[len(VENV_SCHEME):]) / "bin" / "python"
    if not python.exists():
        raise ImageUnavailable(f"managed image {image.get('name')!r}: its environment {python.parent.parent} is gone")
    return str(python)


class ImageUnavailable(Exception):
    """A trial names a managed image this dispatcher cannot run."""


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


__all__ = ["LocalTrialDispatcher", "ImageUnavailable", "image_python"]
