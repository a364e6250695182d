"""Warm workers for the local trial dispatcher (``local.py`` beside this file): a trial is handed
to a worker that is already started, has imported the worker and the usual model libraries, and
has its sandboxed model process started and waiting, so the trial pays neither interpreter
starts nor imports (issue 10's trial overhead).

- :class:`Zygote` runs ``python -m kilele_worker zygote`` (kilele_worker/zygote.py: it imports
  once and forks one worker per request) and asks it for workers.
- :class:`WarmWorker` is one such worker, seen from here: its pid, its job directory, its status
  pipe (``ready <pid>``, then ``exit <code>``; EOF without it: it died) and its control pipe (the
  trial goes down it once).
- :class:`WarmPool` keeps ``size`` of them ready, hands each out once, replaces the dead, and
  kills the unused ones at stop. It knows workers only through :class:`Spare`.

Each worker runs one trial, in its own job directory; its model process is never reused.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol

from kilele.sandbox import LastingThread, die_with_parent_preexec

log = logging.getLogger("kilele.local")


class Spare(Protocol):
    """What :class:`WarmPool` needs of a pre-started worker."""

    def alive(self) -> bool:
        """False once it has exited (or died)."""

    def wait_ready(self, timeout: float) -> bool:
        """Whether it is ready for a trial within ``timeout`` seconds (False: it died, or is late)."""

    def discard(self) -> None:
        """Kill it and remove what it left (it got no trial)."""


class WarmPool:
    """Up to ``size`` spares started ahead; :meth:`take` hands each out at most once."""

    def __init__(self, start: Callable[[], Spare], size: int, ready_timeout: float = 30.0):
        self._start = start
        self.size = size
        self.ready_timeout = ready_timeout
        self._spares: list[Spare] = []
        self._lock = threading.Lock()
        self._stopped = False

    def fill(self) -> None:
        """Drop the dead spares and start new ones up to ``size`` (a failed start is logged; the
        dispatcher then starts workers the usual way)."""
        with self._lock:
            if self._stopped:
                return
            dead = [spare for spare in self._spares if not spare.alive()]
            self._spares = [spare for spare in self._spares if spare not in dead]
            missing = self.size - len(self._spares)
        for spare in dead:
            log.warning("trial dispatch: a pre-started worker died unused; starting another")
            spare.discard()
        for _ in range(missing):
            try:
                spare = self._start()
            except Exception as e:  # noqa: BLE001 - no warm worker: trials start cold instead
                log.warning("trial dispatch: could not pre-start a worker: %s", e)
                return
            with self._lock:
                if not self._stopped:
                    self._spares.append(spare)
                    continue
            spare.discard()  # stopped meanwhile
            return

    def take(self) -> Optional[Spare]:
        """A ready spare, never handed out before (the pool forgets it), or None (then the caller
        starts a worker itself). The pool is filled up again before this returns."""
        self.fill()
        while True:
            with self._lock:
                if self._stopped or not self._spares:
                    return None
                spare = self._spares.pop(0)
            ready = spare.wait_ready(self.ready_timeout)
            with self._lock:
                stopped = self._stopped
            if ready and not stopped:
                self.fill()
                return spare
            if stopped:  # stopped while it waited: nothing more is handed out
                spare.discard()
                return None
            log.warning("trial dispatch: a pre-started worker was not ready in %.0f s; discarding it",
                        self.ready_timeout)
            spare.discard()

    def stop(self) -> None:
        """Kill every spare not handed out (they leave no process and no file); no more are started."""
        with self._lock:
            self._stopped = True
            spares, self._spares = self._spares, []
        for spare in spares:
            spare.discard()

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._spares)


class WarmWorker:
    """A worker forked by the zygote, waiting for its trial (implements :class:`Spare`)."""

    def __init__(self, job_dir: str, control_fd: int, status_fd: int):
        self.job_dir = job_dir
        self.pid: Optional[int] = None
        self.exit_code: Optional[int] = None
        self._control = control_fd
        self._ready = threading.Event()
        self._exited = threading.Event()
        threading.Thread(target=self._read_status, args=(status_fd,), name="kilele-warm-worker",
                         daemon=True).start()

    def _read_status(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as status:
            for line in status:
                word, _, value = line.decode("ascii", "replace").strip().partition(" ")
                if word == "ready" and value.isdigit():
                    self.pid = int(value)
                    self._ready.set()
                elif word == "exit" and value.lstrip("-").isdigit():
                    self.exit_code = int(value)
        self._exited.set()  # EOF: it exited (an exit code), or died (none)
        self._ready.set()

    def alive(self) -> bool:
        return not self._exited.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout) and self.alive() and self.pid is not None

    def hand(self, message_file: str, environment: Mapping[str, str]) -> None:
        """Gives it its trial (once). Raises OSError if it is gone."""
        fd, self._control = self._control, None
        if fd is None:
            raise OSError("this worker was handed a trial already")
        try:
            data = json.dumps({"message_file": message_file, "environment": dict(environment)}).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Whether it has exited (within ``timeout``)."""
        return self._exited.wait(timeout)

    def signal(self, sig: int) -> None:
        """``sig`` to its process group (its model process has a session of its own and dies
        with it: PR_SET_PDEATHSIG)."""
        if self.pid is not None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def discard(self) -> None:
        if self._control is not None:  # closed with nothing on it: "not needed", it exits
            os.close(self._control)
            self._control = None
        if self.pid is not None:  # else not forked yet: it will find its pipe closed (or die with the zygote)
            self.signal(signal.SIGKILL)
            self._exited.wait(10)
        remove_job_dir(self.job_dir, log_too=True)


def remove_job_dir(job_dir: str, log_too: bool = False) -> None:
    shutil.rmtree(job_dir, ignore_errors=True)
    if log_too:
        try:
            os.unlink(job_dir + ".log")
        except FileNotFoundError:
            pass


class Zygote:
    """``python -m kilele_worker zygote``, started on ``spawner`` (it dies with that thread:
    PR_SET_PDEATHSIG), restarted if it died; :meth:`new_worker` asks it for a worker."""

    def __init__(self, work_dir: Path, python: str, environment: Optional[Mapping[str, str]],
                 spawner: Callable[[], LastingThread]):
        self.work_dir = work_dir
        self.python = python
        self._environment = environment
        self._spawner = spawner
        self._lock = threading.Lock()
        self._process: Optional[subprocess.Popen] = None
        self._socket: Optional[socket.socket] = None

    def _ensure(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._socket is not None:
            return self._socket
        self.stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ if self._environment is None else self._environment)
        with open(self.work_dir / "zygote.log", "ab") as log_file:
            try:
                self._process = self._spawner().call(lambda: subprocess.Popen(
                    [self.python, "-m", "kilele_worker", "zygote", "--fd", str(theirs.fileno())],
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=environment,
                    pass_fds=[theirs.fileno()], start_new_session=True, cwd="/",
                    preexec_fn=die_with_parent_preexec(signal.SIGKILL),
                ))
            finally:
                theirs.close()
        self._socket = ours
        return ours

    def new_worker(self) -> WarmWorker:
        """A new job directory and a worker forked into it (ready once its status says so)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        job_dir = tempfile.mkdtemp(prefix="trial-", dir=self.work_dir)  # 0700: it will hold the message
        control_read, control_write = os.pipe()
        status_read, status_write = os.pipe()
        log_fd = os.open(job_dir + ".log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with self._lock:
                for attempt in (1, 2):  # a dead zygote is started again once
                    try:
                        socket.send_fds(self._ensure(), [json.dumps({"job_dir": job_dir}).encode()],
                                        [control_read, status_write, log_fd])
                        break
                    except OSError:
                        self.stop()
                        if attempt == 2:
                            raise
        except BaseException:
            for fd in (control_write, status_read):
                os.close(fd)
            remove_job_dir(job_dir, log_too=True)
            raise
        finally:
            for fd in (control_read, status_write, log_fd):
                os.close(fd)
        return WarmWorker(job_dir, control_write, status_read)

    def stop(self) -> None:
        """Ends the zygote, and with it the workers it forked (PR_SET_PDEATHSIG). Killed, not
        asked: it holds nothing to save, and the teardown of what it imported (pandas,
        scikit-learn) kept a loaded machine's stack stopping 2 s longer."""
        sock, self._socket = self._socket, None
        process, self._process = self._process, None
        if sock is not None:
            sock.close()
        if process is not None:
            process.kill()
            process.wait()


def worker_environment(environment: Optional[Mapping[str, str]], job_dir: str, workdir_env: str) -> dict[str, Any]:
    """The environment a worker of ``job_dir`` runs with (as a process started for it would)."""
    values = dict(os.environ if environment is None else environment)
    values[workdir_env] = job_dir
    return values


__all__ = ["WarmPool", "WarmWorker", "Spare", "Zygote", "remove_job_dir", "worker_environment"]
