"""Running untrusted model code in a child process: environment, limits, memory watch, outputs.

What isolates the model from the platform here: an environment with no AWS credentials or
endpoints (nor anything else that looks like a secret or the task token), and the confinement
of :mod:`kilele.sandbox` — a user of its own when the worker is root, no network, its own PID and
mount namespaces (nothing it starts outlives it, /tmp is read-only, its /proc shows only its own
processes), address-space, CPU-time and process limits, death with the supervisor — as far as
the kernel allows (the model's log says what was missing). The supervisor is non-dumpable, so a
model that had to keep the supervisor's user still cannot read its memory or environment.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Mapping, Optional

from kilele import sandbox as kilele_sandbox

import kilele_worker

if TYPE_CHECKING:
    from kilele_worker.settings import WorkerSettings

# Removed from the model's environment: AWS and emulator settings, the platform's own, and secrets.
_DROP_PREFIXES = ("AWS_", "AMAZON_", "BOTO_", "MOTO_", "ECS_CONTAINER_METADATA_URI", "KILELE_", "SM_HP")
_DROP_PATTERN = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|PRIVATE_KEY", re.IGNORECASE)

MEMORY_SIGNALS = (signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT)


def child_environment(environ: Mapping[str, str], *, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The model's environment: ``environ`` (the worker's, from its settings) without AWS_*,
    credentials or the platform's settings."""
    env = {
        name: value
        for name, value in environ.items()
        if not name.upper().startswith(_DROP_PREFIXES) and not _DROP_PATTERN.search(name)
    }
    # The child must find kilele_worker even when the worker runs from a source tree.
    package_parent = str(Path(kilele_worker.__file__).resolve().parent.parent)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_parent not in paths:
        paths.insert(0, package_parent)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def check_dependencies(dependencies: dict[str, Optional[str]]) -> tuple[list[str], list[str]]:
    """(missing, warnings): a dependency is missing when no distribution of that name is installed;
    another version than the requested one is only a warning."""
    missing, warnings = [], []
    for name, wanted in sorted(dependencies.items()):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if _importable(name):  # an import name rather than a distribution name
                warnings.append(f"{name}: importable, but no distribution of that name (version unknown)")
            else:
                missing.append(f"{name}{'==' + wanted if wanted else ''}")
            continue
        if wanted and not _version_matches(installed, wanted):
            warnings.append(f"{name}: {wanted} requested, {installed} installed")
    return missing, warnings


def _importable(name: str) -> bool:
    # Top-level names only: find_spec("a.b") would import (run) package a in the supervisor.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _version_matches(installed: str, wanted: str) -> bool:
    wanted = wanted.strip()
    if wanted[:1].isdigit():
        return installed == wanted
    try:  # a specifier such as ">=1.2,<2": checked when `packaging` is available
        from packaging.specifiers import SpecifierSet

        return installed in SpecifierSet(wanted)
    except Exception:  # noqa: BLE001 - no packaging, or not a specifier: only a warning anyway
        return wanted in ("", "*")


def confinement(workdir: str, *, inputs: list[str], memory_limit_mb: Optional[int], timeout_seconds: float,
                settings: "WorkerSettings") -> kilele_sandbox.Confinement:
    """The model process's confinement: ``output/`` and ``scratch/`` its own (its cwd, TMPDIR and
    HOME), the work directory, ``input/`` and ``inputs`` readable by it only, no network, a
    memory limit, CPU seconds no more than the wall-clock timeout allows on every core, a cap on
    its processes."""
    cpu_seconds = cpu_seconds_for(timeout_seconds)
    return kilele_sandbox.Confinement(
        cwd=os.path.join(workdir, "scratch"),
        own=[os.path.join(workdir, "output"), os.path.join(workdir, "scratch")],
        shared=[workdir, os.path.join(workdir, "input"), *inputs],
        user=settings.sandbox_user, isolate=settings.sandbox_isolate,
        memory_bytes=memory_limit_mb * 1024 * 1024 if memory_limit_mb else None,
        cpu_seconds=cpu_seconds, max_processes=settings.sandbox_max_processes,
    )


def cpu_seconds_for(timeout_seconds: float) -> int:
    """The model's CPU-time limit: no more than the wall-clock timeout allows on every core."""
    return int(timeout_seconds * (os.cpu_count() or 1)) + 10


def spawn_child(spec_path: str, *, confined: kilele_sandbox.Confinement, env: dict[str, str]) -> subprocess.Popen:
    """``python -m kilele_worker.child spec.json`` confined (:mod:`kilele.sandbox`), in its own
    session (process group = its pid), stdout and stderr on one pipe."""
    return kilele_sandbox.spawn(confined, [sys.executable, "-m", "kilele_worker.child", spec_path], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class MemoryWatch:
    """Peaks of the model process read from /proc while it runs, and the cgroup's OOM kills."""

    vm_peak_kb: int = 0
    vm_hwm_kb: int = 0
    oom_kills_before: Optional[int] = None
    _model_pid: Optional[int] = None
    _lookups: int = 0

    def start(self) -> None:
        self.oom_kills_before = cgroup_oom_kills()

    def sample(self, pid: int) -> None:
        """Reads the peaks of ``pid`` and, when it is the sandbox's reaper (a PID namespace), of
        the model process below it."""
        if self._model_pid is None and self._lookups < 25:  # the reaper forks at once; stop looking after ~5 s
            self._lookups += 1
            self._model_pid = kilele_sandbox.model_pid(pid)
        for which in (pid, self._model_pid):
            if which is not None:
                self._sample_one(which)

    def _sample_one(self, pid: int) -> None:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmPeak:"):
                        self.vm_peak_kb = max(self.vm_peak_kb, int(line.split()[1]))
                    elif line.startswith("VmHWM:"):
                        self.vm_hwm_kb = max(self.vm_hwm_kb, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            pass

    def memory_related(self, memory_limit_mb: Optional[int], max_rss_kb: int = 0) -> bool:
        """Was a death by signal likely for lack of memory? The cgroup OOM killer fired, or the
        process came near its limit (address space or resident)."""
        after = cgroup_oom_kills()
        if self.oom_kills_before is not None and after is not None and after > self.oom_kills_before:
            return True
        if memory_limit_mb:
            limit_kb = memory_limit_mb * 1024
            if self.vm_peak_kb >= 0.8 * limit_kb or max(self.vm_hwm_kb, max_rss_kb) >= 0.8 * limit_kb:
                return True
        return False


def cgroup_oom_kills() -> Optional[int]:
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path, encoding="ascii") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == "oom_kill":
                        return int(parts[1])
        except (OSError, ValueError):
            continue
    return None


class UnsafeOutput(Exception):
    pass


def open_child_file(directory: str, name: str, owner_uid: Optional[int] = None) -> Optional[BinaryIO]:
    """A file the model process wrote, opened for reading, or None if absent. Refuses symlinks,
    hard links and non-regular files, so a model cannot make the (possibly privileged) supervisor
    read or upload other files."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as e:  # ELOOP: a symlink
            raise UnsafeOutput(f"{name} is not a regular file ({e.strerror})") from e
    finally:
        os.close(dir_fd)
    f = os.fdopen(fd, "rb")
    try:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise UnsafeOutput(f"{name} is not a regular file")
        if owner_uid is not None and info.st_uid != owner_uid:
            raise UnsafeOutput(f"{name} is not owned by the model user")
    except BaseException:
        f.close()
        raise
    return f


def read_child_file(directory: str, name: str, max_bytes: int, owner_uid: Optional[int] = None) -> Optional[bytes]:
    f = open_child_file(directory, name, owner_uid)
    if f is None:
        return None
    with f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeOutput(f"{name} is larger than the {max_bytes} bytes allowed")
    return data
