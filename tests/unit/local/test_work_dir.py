"""The local stack's run-time directories: a live stack's is kept, a dead one's is removed by the
next stack, whatever killed it (chalicelib/local/work_dir.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from chalicelib.local.work_dir import LOCK_NAME, PREFIX, WorkDir, remove_stale

REPO = Path(__file__).resolve().parents[3]


def test_a_live_stacks_directory_is_kept_and_removed_by_its_stack(tmp_path):
    work = WorkDir(tmp_path)
    (work.path / "trials").mkdir()
    assert work.path.name.startswith(PREFIX)
    assert (work.path / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert remove_stale(tmp_path) == []  # flock is per open file: this process's other open still conflicts
    assert work.path.exists()
    work.remove()
    assert list(tmp_path.iterdir()) == []


def test_a_killed_stacks_directory_is_removed_by_the_next(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from chalicelib.local.work_dir import WorkDir
        work = WorkDir(Path({str(tmp_path)!r}))
        (work.path / "trials" / "trial-1").mkdir(parents=True)
        (work.path / "trials" / "trial-1" / "data.csv").write_text("a,b\\n")
        print(work.path, flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        left = child.stdout.readline().strip()
        assert remove_stale(tmp_path) == [], "its stack still runs"
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert [str(p) for p in remove_stale(tmp_path)] == [left]
        assert list(tmp_path.iterdir()) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_what_is_not_a_stacks_directory_is_left_alone(tmp_path):
    old = tmp_path / f"{PREFIX}older-version"  # a stack before lock files: cannot tell if it runs
    old.mkdir()
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / LOCK_NAME).write_text("1\n")
    (tmp_path / f"{PREFIX}link").symlink_to(other)
    (tmp_path / f"{PREFIX}file").write_text("")
    assert remove_stale(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [old.name, "elsewhere", f"{PREFIX}link", f"{PREFIX}file"])
