"""The model process's CPU limit: a busy child is held to its quota (cgroup), or pinned to whole
cores when no cgroup can be made; the cgroup is gone afterwards."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kilele_worker.cpu_limit import CpuLimit, thread_environment

# Two busy threads in numpy-free pure Python would be held by the GIL to one core: use processes.
_BUSY = """
import multiprocessing as mp, time
def spin():
    end = time.time() + 30
    while time.time() < end:
        pass
if __name__ == "__main__":
    procs = [mp.Process(target=spin) for _ in range(2)]
    [p.start() for p in procs]
    [p.join() for p in procs]
"""


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and of its live children (utime + stime from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _busy(tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / "busy.py"
    script.write_text(_BUSY)
    return subprocess.Popen([sys.executable, str(script)], start_new_session=True)


def _measure(child: subprocess.Popen, seconds: float = 2.0) -> float:
    time.sleep(0.5)  # the two spinners started
    before, t0 = _cpu_seconds(child.pid), time.monotonic()
    time.sleep(seconds)
    return (_cpu_seconds(child.pid) - before) / (time.monotonic() - t0)


def _stop(child: subprocess.Popen) -> None:
    os.killpg(child.pid, 9)
    child.wait()


def test_a_cgroup_holds_a_busy_process_to_its_quota(tmp_path):
    limit = CpuLimit(300)
    child = _busy(tmp_path)
    try:
        how = limit.apply(child.pid)
        if not how.startswith("cgroup"):
            pytest.skip(f"this machine gives no writable cpu cgroup: {how}")
        used = _measure(child)
        group = limit.group
        assert group is not None and group.is_dir()
    finally:
        _stop(child)
        limit.release()
    assert used < 0.45, f"{used:.2f} cores used under a 300-millicore quota ({how})"
    assert not group.exists()


def test_without_cgroups_the_process_is_pinned_to_whole_cores(tmp_path):
    limit = CpuLimit(700, allow_cgroups=False)
    child = _busy(tmp_path)
    try:
        how = limit.apply(child.pid)
        assert os.sched_getaffinity(child.pid) == {sorted(os.sched_getaffinity(0))[0]}
        if len(os.sched_getaffinity(0)) > 1:
            used = _measure(child)
            assert used < 1.2, f"{used:.2f} cores used while pinned to one ({how})"
    finally:
        _stop(child)
    assert "pinned to 1 of" in how and limit.group is None


def test_thread_pools_follow_the_limit():
    assert thread_environment(CpuLimit(1500))["OMP_NUM_THREADS"] == "2"
    assert thread_environment(CpuLimit(100))["OPENBLAS_NUM_THREADS"] == "1"
    assert thread_environment(None) == {}
    with pytest.raises(ValueError):
        CpuLimit(0)


def test_children_started_before_the_limit_are_limited_too(tmp_path):
    """The sandbox's entry forks before the model runs: a tree already forked is moved whole."""
    limit = CpuLimit(300)
    child = _busy(tmp_path)
    try:
        time.sleep(0.5)  # the two spinners exist before the limit
        how = limit.apply(child.pid)
        if not how.startswith("cgroup"):
            pytest.skip(f"this machine gives no writable cpu cgroup: {how}")
        members = set(map(int, (limit.group / "cgroup.procs").read_text().split()))
        used = _measure(child)
    finally:
        _stop(child)
        limit.release()
    assert len(members) >= 3, members  # the parent and both spinners
    assert used < 0.45, f"{used:.2f} cores used under a 300-millicore quota ({how})"


def test_a_killed_workers_group_is_removed_by_the_next_limit(tmp_path):
    """A SIGKILLed worker cannot release its cgroup: the next worker that makes one removes the
    groups of workers that are gone, and keeps those of workers that run."""
    from kilele_worker.cpu_limit import _new_child

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"kilele-model-{dead.pid}-0a0b0c0d"
    running = tmp_path / f"kilele-model-{os.getppid()}-0e0f1011"
    other = tmp_path / "someone-else"
    for path in (orphan, running, other):
        path.mkdir()
    mine = _new_child(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, other.name, mine.name])
