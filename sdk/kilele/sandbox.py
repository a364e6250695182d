"""Where model code runs: a confined process (the platform's side; the worker and the local stack
use it, the SDK's own commands do not).

:func:`spawn` starts ``COMMAND`` through :mod:`kilele.sandbox_entry`, which confines itself and
then execs it: its own user, no network, its own ``/proc`` and process namespace, read-only
world-writable directories, resource limits, no new privileges, death with its parent. What the
kernel or the identity does not allow is skipped and reported (stderr line
``kilele-sandbox: missing: ...``; :func:`probe` says it in advance, for ``kilele local up``).

The process must be started from a thread that lives as long as it should (the main thread, or
:class:`LastingThread`): ``PR_SET_PDEATHSIG`` fires when the parent *thread* exits.
"""
from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Optional, Sequence

from kilele import sandbox_entry

ENTRY = str(Path(sandbox_entry.__file__).resolve())
#: Per-run identities are ``UID_BASE + pid`` (no passwd entry; far above any login or system user,
#: below 2**31 so every tool prints it as a positive number).
UID_BASE = 1_900_000_000


@dataclass(frozen=True)
class Confinement:
    """What a sandboxed process gets. ``None`` limits are not set."""

    cwd: str
    own: Sequence[str] = ()       # chowned to the run's user, writable (its work and temp directories)
    shared: Sequence[str] = ()    # readable by the run only (root:its group), e.g. its inputs
    readable: Sequence[str] = ()  # reachable, left as they are (a managed image's environment)
    user: bool = True             # a user of its own when the platform is root
    network_access: bool = False  # False: a network namespace of its own (no route anywhere)
    isolate: bool = True          # mount + PID namespaces (own /proc, read-only /tmp, nothing outlives it)
    memory_bytes: Optional[int] = None
    cpu_seconds: Optional[int] = None
    max_processes: Optional[int] = 256  # processes and threads of the run's user: a fork bomb stops there
    file_bytes: Optional[int] = None
    shm_bytes: int = 64 << 20
    uid_base: int = UID_BASE

    def entry_config(self) -> dict[str, Any]:
        return {
            "parent": os.getpid(), "cwd": self.cwd, "own": list(self.own), "shared": list(self.shared),
            "uid_base": self.uid_base if self.user else None, "network": not self.network_access,
            "pid_namespace": self.isolate, "private_tmp": self.isolate,
            "memory_bytes": self.memory_bytes, "cpu_seconds": self.cpu_seconds,
            "max_processes": self.max_processes, "file_bytes": self.file_bytes, "shm_bytes": self.shm_bytes,
            "expose": interpreter_paths() + [*self.readable, self.cwd, *self.own, *self.shared],
        }


def interpreter_paths() -> list[str]:
    """What the confined Python must reach: the interpreter, its prefixes, its import path."""
    paths = [os.path.realpath(sys.executable), sys.base_prefix, sys.prefix, *sys.path]
    seen: list[str] = []
    for path in paths:
        real = os.path.realpath(path) if path else ""
        if real and os.path.exists(real) and real not in seen:
            seen.append(real)
    return seen


def command(confinement: Confinement, argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """The argv that runs ``argv`` confined."""
    return [python, "-I", ENTRY, json.dumps(confinement.entry_config()), "--", *argv]


def spawn(confinement: Confinement, argv: Sequence[str], *, env: dict[str, str], python: str = sys.executable,
          **popen: Any) -> subprocess.Popen:
    """Starts ``argv`` confined, in a session of its own (its pid is its process group's)."""
    return subprocess.Popen(command(confinement, argv, python), cwd=confinement.cwd, env=env,
                            start_new_session=True, close_fds=True, **popen)


@dataclass
class Forked:
    """A confined process started by :func:`fork_confined`: what callers use of a ``Popen``."""

    pid: int
    stdout: BinaryIO  # its stdout and stderr, one pipe
    returncode: Optional[int] = None


def fork_confined(confinement: Confinement, run: Callable[[], int], *, env: Mapping[str, str],
                  keep_fds: Sequence[int] = ()) -> Forked:
    """Forks a process that confines itself as :func:`spawn` would (:func:`kilele.sandbox_entry.confine`:
    the same steps, a user of its own from its pid) and then calls ``run``, whose result is its
    exit code: no exec, so what this process has imported is there already (a pre-started spare
    pays no interpreter start or imports).

    The fork copies this process's memory: call it only from a process that holds nothing the
    confined code may not see (no credentials, no task token; its environment is replaced by
    ``env``, but the original block stays in its memory), that has run no model code, and from
    one thread (the only one a fork keeps). The child keeps stdin on /dev/null, stdout and stderr
    on one pipe (``Forked.stdout``), ``keep_fds``, and closes every other descriptor."""
    config = confinement.entry_config()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; tests/security check what it becomes
        code = 1
        try:
            os.setsid()  # a session of its own: its pid is its process group's, as with spawn()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            close_fds_except({0, 1, 2, *keep_fds})
            # New stream objects on those descriptors, unbuffered as PYTHONUNBUFFERED makes them:
            # the inherited ones may be a test runner's capture, or hold the parent's buffer.
            sys.stdout = sys.__stdout__ = text_stream(1)
            sys.stderr = sys.__stderr__ = text_stream(2)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.environ.clear()
            os.environ.update(env)
            os.chdir(confinement.cwd)
            sandbox_entry.confine(config, exec_follows=False)
            code = run()
        except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
            try:
                import traceback

                traceback.print_exc()
            except BaseException:  # noqa: BLE001
                pass
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:  # noqa: BLE001
                    pass
            os._exit(code if isinstance(code, int) else 1)
    os.close(write_end)
    return Forked(pid, os.fdopen(read_end, "rb"))


def text_stream(fd: int) -> io.TextIOWrapper:
    """An unbuffered text stream on ``fd`` (as PYTHONUNBUFFERED makes stdout), leaving it open."""
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                            line_buffering=True, write_through=True)


def close_fds_except(keep: set[int]) -> None:
    """Closes every descriptor of this process but ``keep``."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:  # the directory's own descriptor, gone already
                pass


def run_uid(process_pid: int, confinement: Confinement) -> Optional[int]:
    """The user the run of ``process_pid`` has (None: it kept the platform's)."""
    if not confinement.user or os.geteuid() != 0:
        return None
    return confinement.uid_base + process_pid


def kill_user(uid: Optional[int], rounds: int = 20) -> int:
    """SIGKILLs every process of ``uid`` (a run's own user: what it left, when it had no PID
    namespace); returns how many were signalled. Repeats while new ones appear (a fork bomb)."""
    if uid is None or uid == 0 or uid == os.geteuid():
        return 0
    killed = 0
    for _ in range(rounds):
        found = [pid for pid in _pids() if _uid_of(pid) == uid]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    return killed


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _uid_of(pid: int) -> Optional[int]:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc/*/stat; the kernel here has no
    /proc/PID/task/TID/children)."""
    found = []
    for candidate in _pids():
        try:
            with open(f"/proc/{candidate}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(candidate)
    return found


def model_pid(process_pid: int) -> Optional[int]:
    """The model's pid below a sandbox's reaper (reaper -> namespace init -> model), or None
    (not started yet, or no PID namespace: then ``process_pid`` is the model)."""
    init = children_of(process_pid)
    model = children_of(init[0]) if init else []
    return model[0] if model else None


@dataclass(frozen=True)
class Support:
    """What :func:`spawn` can give on this machine, for this process."""

    user: bool
    namespaces: bool
    reason: str = ""

    def missing(self) -> list[str]:
        gaps = []
        if not self.user:
            gaps.append("a user of its own (the platform is not root, or its Python is not reachable by "
                        "other users: model code runs as the platform's user)")
        if not self.namespaces:
            gaps.append(f"network and process isolation (no namespaces: {self.reason or 'unshare refused'})")
        return gaps


@lru_cache(maxsize=1)
def probe() -> Support:
    """Tries the namespaces once (a child process that unshares them and exits)."""
    if not sys.platform.startswith("linux"):
        return Support(user=False, namespaces=False, reason=f"{sys.platform} is not Linux")
    flags = sandbox_entry.CLONE_NEWNET | sandbox_entry.CLONE_NEWNS | sandbox_entry.CLONE_NEWPID
    code = f"import sys; sys.path.insert(0, {str(Path(ENTRY).parent)!r}); import sandbox_entry as s; s.unshare({flags})"
    try:
        result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Support(user=os.geteuid() == 0, namespaces=False, reason=str(e))
    reason = result.stderr.decode(errors="replace").strip().splitlines()[-1:] if result.returncode else []
    namespaces = result.returncode == 0
    # Without a mount namespace a user of its own needs an interpreter every user can reach.
    user = os.geteuid() == 0 and (namespaces or all(map(sandbox_entry.reachable, interpreter_paths())))
    return Support(user=user, namespaces=namespaces, reason=reason[0] if reason else "")


def isolation_line() -> Optional[str]:
    """One plain line saying which isolation model code lacks here, or None when it has all."""
    gaps = probe().missing()
    return f"model code runs without {' and without '.join(gaps)}" if gaps else None


def protect_self() -> None:
    """Makes this process non-dumpable: a process of the same user (a model that could not be
    given a user of its own) cannot read its memory or ``/proc/<pid>/environ``."""
    try:
        sandbox_entry.prctl(sandbox_entry.PR_SET_DUMPABLE, 0)
    except OSError:
        pass


class LastingThread:
    """Starts processes from one long-lived thread: their ``PR_SET_PDEATHSIG`` is tied to the
    thread that forked them, so short-lived request or consumer threads must not fork them."""

    def __init__(self, name: str = "kilele-spawner"):
        self._jobs: "queue.Queue[tuple[Callable[[], Any], queue.Queue]]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, function: Callable[[], Any]) -> Any:
        """Runs ``function`` (which starts a process) on the lasting thread; returns its result."""
        answer: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((function, answer))
        ok, value = answer.get()
        if not ok:
            raise value
        return value

    def _run(self) -> None:
        while True:
            function, answer = self._jobs.get()
            try:
                answer.put((True, function()))
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                answer.put((False, e))


_die_with_parent_signal = signal.SIGKILL


def die_with_parent_preexec(sig: int = _die_with_parent_signal) -> Callable[[], None]:
    """A ``preexec_fn`` for trusted children (the worker's supervisor, a server): ``sig`` when
    the parent thread exits, and an immediate exit if the parent is already gone."""
    parent = os.getpid()

    def preexec() -> None:  # pragma: no cover - runs in the child
        sandbox_entry.prctl(sandbox_entry.PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:
            os._exit(sandbox_entry.EXIT_PARENT_GONE)

    return preexec


__all__ = ["Confinement", "spawn", "fork_confined", "Forked", "close_fds_except", "text_stream",
           "command", "run_uid", "kill_user", "probe", "Support", "isolation_line",
           "protect_self", "LastingThread", "die_with_parent_preexec", "children_of", "UID_BASE"]
