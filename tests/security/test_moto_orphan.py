"""The local stack's moto child never outlives the stack (issue 9): PR_SET_PDEATHSIG ends it when
the stack is SIGKILLed, and where that signal is lost (the stack died before the child set it)
the child sees it has been re-parented and stops by itself. Real moto children, no stack."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from chalicelib.local.moto_server import watch_parent
from chalicelib.local.ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_sigkilled_parent_takes_its_moto_child_with_it(tmp_path):
    # A stand-in stack: starts MotoServer as the stack does, prints the child's pid, then waits.
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from chalicelib.local.moto_server import MotoServer
        server = MotoServer(state_dir={str(tmp_path / 'moto')!r})
        server.start()
        print(server.pid, flush=True)
        time.sleep(600)
    """)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone(child, 25), f"moto {child} outlived its SIGKILLed parent"
    finally:
        parent.kill()


def test_a_moto_child_whose_parent_is_gone_stops_without_the_death_signal(tmp_path):
    # Started with --parent-pid of a process that is not its parent: as if the stack had died
    # before PR_SET_PDEATHSIG was set (no signal will come). It must stop on its own.
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "chalicelib.local.moto_server", "--port", str(port),
                              "--state-dir", str(tmp_path / "moto"), "--parent-pid", "1"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert child.wait(timeout=60) == 0
        assert "is gone: stopping" in child.stdout.read()
        assert (tmp_path / "moto").is_dir()
    finally:
        child.kill()


def test_watch_parent_stops_only_when_the_parent_changes():
    stop = threading.Event()
    watcher = threading.Thread(target=watch_parent, args=(os.getppid(), stop, 0.05), daemon=True)
    watcher.start()
    time.sleep(0.3)
    assert not stop.is_set(), "stopped while its parent was still there"
    stop.set()
    watcher.join(2)

    orphaned = threading.Event()
    threading.Thread(target=watch_parent, args=(os.getppid() + 1, orphaned, 0.05), daemon=True).start()
    assert orphaned.wait(2), "did not notice that its parent was another process"
