"""Helpers of the attack tests (imported by name: a test module importing 'conftest' may get another
folder's in a whole-suite run): the hostile model's source, a loopback listener on the host that
counts who reached it, and /proc helpers to find processes."""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

from kilele.sandbox import probe

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_MODEL = Path(__file__).with_name("hostile_model.py")
WORKER_TESTS = ROOT / "tests" / "unit" / "worker"
if str(WORKER_TESTS) not in sys.path:  # worker_harness: the trial's bucket, queue and state machine
    sys.path.insert(0, str(WORKER_TESTS))


#: For tests of the full sandbox: it needs root and namespaces (README, "Security model"). Where
#: they are missing the stack says so at start; these tests say so as their skip reason.
needs_isolation = pytest.mark.skipif(bool(probe().missing()),
                                     reason=f"no full sandbox here: {'; '.join(probe().missing())}")


def hostile_source(**targets) -> str:
    """The hostile model with its targets filled in (see hostile_model.py)."""
    targets.setdefault("tag", "kilele-escape-" + uuid.uuid4().hex[:12])
    targets.setdefault("outside", [])
    targets.setdefault("addresses", [])
    targets.setdefault("forks", 0)
    targets.setdefault("memory_bytes", 1 << 20)
    return HOSTILE_MODEL.read_text().replace("__TARGETS__", json.dumps(targets).replace("'", "\\'"))


class Listener:
    """A TCP listener on the host's 127.0.0.1 that counts the connections it accepted."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()




def alive(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] != b"Z"


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (walking parent pids in /proc)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
                parents[int(name)] = int(stat[stat.rfind(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {pid for pid in found if alive(pid)}


def tagged(tag: str) -> set[int]:
    """Live processes with ``tag`` in their command line (the hostile model's daemon)."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if tag.encode() in f.read() and alive(int(name)):
                        found.add(int(name))
            except OSError:
                continue
    return found


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
