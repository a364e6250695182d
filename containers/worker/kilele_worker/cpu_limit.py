"""A CPU limit for the model process: what ``cpu_request_millicores`` becomes when the worker runs
the model itself (locally), as Batch's vCPU setting is on AWS.

Three ways, best first, the first the machine allows is used and named (the job's log says which):

1. a cgroup v2 child with ``cpu.max`` = ``millicores`` of every 100 ms period;
2. a cgroup v1 ``cpu`` child with ``cpu.cfs_quota_us`` (the same quota);
3. no cgroup may be made (not root, read-only ``/sys/fs/cgroup``): the process is pinned to
   ``ceil(millicores / 1000)`` CPUs (``sched_setaffinity``) — a cap in whole cores.

The process is moved in right after it is spawned (a Python interpreter still starting, before
any model code is imported), with any descendant it already has; writing a pid to
``cgroup.procs`` moves all its threads, and everything forked later inherits the group or the
affinity. :meth:`CpuLimit.release` removes
the cgroup once the process tree is gone.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PERIOD_US = 100_000
_CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class CpuLimit:
    """At most ``millicores`` thousandths of a CPU for one process tree."""

    millicores: int
    cgroup_root: Path = _CGROUP_ROOT
    allow_cgroups: bool = True
    method: str = ""
    group: Optional[Path] = None

    def __post_init__(self) -> None:
        if self.millicores <= 0:
            raise ValueError(f"millicores must be positive, got {self.millicores}")

    @property
    def cores(self) -> int:
        """Whole CPUs the limit rounds up to (threads worth starting, the affinity fallback)."""
        return max(1, math.ceil(self.millicores / 1000))

    def apply(self, pid: int) -> str:
        """Limit ``pid`` (and what it forks from now on); returns how, in words, for the log."""
        quota = self.millicores * PERIOD_US // 1000
        if self.allow_cgroups:
            for make in (self._cgroup_v2, self._cgroup_v1):
                try:
                    group = make(quota)
                except OSError:
                    continue
                if group is None:
                    continue
                try:
                    for member in process_tree(pid):
                        (group / "cgroup.procs").write_text(str(member))
                except OSError:
                    _remove(group)
                    continue
                self.group = group
                return self.method
        return self._affinity(pid)

    def release(self, wait_seconds: float = 5.0) -> bool:
        """Remove the cgroup, once the process tree has exited: killed processes leave it only
        when reaped (orphans by init, a moment later), so an occupied group is retried for up to
        ``wait_seconds``. False if it could not be removed (it is left, empty of CPU quota use)."""
        if self.group is None:
            return True
        deadline = time.monotonic() + wait_seconds
        while True:
            if _remove(self.group):
                self.group = None
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # --- the three ways -------------------------------------------------------------------
    def _cgroup_v2(self, quota: int) -> Optional[Path]:
        base = self._own_group(v2=True)
        if base is None or "cpu" not in _read(base / "cgroup.subtree_control").split():
            return None
        group = _new_child(base)
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        self.method = f"cgroup v2 cpu.max {quota} {PERIOD_US} ({self.millicores} millicores)"
        return group

    def _cgroup_v1(self, quota: int) -> Optional[Path]:
        base = self._own_group(v2=False)
        if base is None:
            return None
        group = _new_child(base)
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
        self.method = f"cgroup v1 cpu.cfs_quota_us {quota} of {PERIOD_US} ({self.millicores} millicores)"
        return group

    def _affinity(self, pid: int) -> str:
        available = sorted(os.sched_getaffinity(0))
        chosen = available[:self.cores]
        for member in process_tree(pid):
            try:
                for tid in os.listdir(f"/proc/{member}/task"):
                    os.sched_setaffinity(int(tid), chosen)
            except OSError:  # exited meanwhile
                continue
        self.method = (f"no cgroup could be made: pinned to {len(chosen)} of {len(available)} CPUs "
                       f"({self.millicores} millicores rounded up to whole cores)")
        return self.method

    def _own_group(self, v2: bool) -> Optional[Path]:
        """This process's own cpu cgroup directory (children are made inside it)."""
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if v2 and controllers == "":
                root = self.cgroup_root if (self.cgroup_root / "cgroup.controllers").exists() \
                    else self.cgroup_root / "unified"
            elif not v2 and "cpu" in controllers.split(","):
                root = self.cgroup_root / ("cpu" if (self.cgroup_root / "cpu").is_dir() else controllers)
            else:
                continue
            base = root / path.lstrip("/")
            if base.is_dir() and os.access(base, os.W_OK):
                return base
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (the sandbox's entry forks a reaper, an init and the model:
    whichever of them exist already must be moved too)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                todo += [int(c) for c in Path(f"/proc/{current}/task/{tid}/children").read_text().split()]
            except OSError:
                continue
    return out


def thread_environment(limit: Optional[CpuLimit]) -> dict[str, str]:
    """Thread-pool sizes for the numeric libraries, matched to the limit (more threads than
    cores under a quota only queue up for it)."""
    if limit is None:
        return {}
    n = str(limit.cores)
    return {name: n for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                 "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


_GROUP_PREFIX = "kilele-model-"


def _new_child(base: Path) -> Path:
    remove_orphans(base)
    group = base / f"{_GROUP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    group.mkdir()
    return group


def remove_orphans(base: Path) -> list[Path]:
    """Remove the groups under ``base`` of workers that are gone: a SIGKILLed worker cannot
    :meth:`CpuLimit.release` its group, which would stay behind (empty: its processes died with
    it). A group whose worker pid is alive (or was reused) is kept; one still occupied cannot go."""
    removed = []
    for group in base.glob(f"{_GROUP_PREFIX}*"):
        try:
            pid = int(group.name[len(_GROUP_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid) and _remove(group):
            removed.append(group)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def _remove(group: Path) -> bool:
    try:
        group.rmdir()  # cgroup directories are removed with rmdir, their files go with them
    except FileNotFoundError:
        return True
    except OSError:  # EBUSY: processes still in it
        return False
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
