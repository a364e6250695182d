"""The local stack's data directory: its saved state, its lock and its pid/state file.

Layout::

    <data dir>/
      moto/state.snapshot   what moto holds (moto_snapshot.py), rewritten atomically
      moto/blobs/<sha256>   S3 object bodies
      moto/moto.log         the moto child's log
      events/events.jsonl   the event log (adapters/events/local.py)
      schedules/schedules.json  the local schedules (adapters/schedules/local.py)
      stack.lock            held (flock) by the one stack that uses this directory
      stack.json            {"pid", "api_url", "moto_url", ...} while that stack runs

``kilele local status`` and ``kilele local down`` find a running stack through ``stack.json``;
the lock, not the file, says whether it still runs (a SIGKILLed stack leaves the file behind,
but the kernel releases its lock).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"
MOTO_DIR = "moto"
#: State the stack keeps beside moto's (issue 12): the event log and the local schedules.
STATE_DIRS = ("events", "schedules")


class DataDirBusy(Exception):
    """Another running stack uses this data directory."""


class DataDir:
    """One data directory; :meth:`acquire` before using it, :meth:`release` when done."""

    def __init__(self, path: Path):
        self.path = Path(path).expanduser().resolve()
        self._lock: Optional[int] = None

    @property
    def moto_dir(self) -> Path:
        return self.path / MOTO_DIR

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def acquire(self) -> None:
        """Take the directory for this process; raises :class:`DataDirBusy` if another stack has it."""
        self.path.mkdir(parents=True, exist_ok=True)
        # Its owner's only: it holds every user's data, password and key hashes, and model code
        # runs as other users (kilele.sandbox), which must not read it.
        os.chmod(self.path, 0o700)
        descriptor = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            running = read_state(self.path)
            who = f" (pid {running['pid']}, API {running.get('api_url')})" if running else ""
            raise DataDirBusy(f"another local stack{who} uses {self.path}; stop it with `kilele local down "
                              f"--data-dir {self.path}` or choose another --data-dir") from None
        self._lock = descriptor

    def reset(self) -> None:
        """Delete the saved state (call it after :meth:`acquire`): moto's, the event log and the
        schedules (built images stay: a cache of requirement sets, not state)."""
        for directory in (self.moto_dir, *(self.path / name for name in STATE_DIRS)):
            shutil.rmtree(directory, ignore_errors=True)

    def write_state(self, **values: Any) -> None:
        """Record the running stack (pid, URLs ...) for ``kilele local status``/``down``."""
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"pid": os.getpid(), **values}, indent=2))
        os.replace(temporary, self.state_file)

    def release(self) -> None:
        """Remove the state file and let the directory go (only if this process took it)."""
        if self._lock is not None:
            self.state_file.unlink(missing_ok=True)
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None


def read_state(path: Path) -> Optional[dict[str, Any]]:
    """The state file of ``path``'s running stack, or None when no stack runs there."""
    path = Path(path).expanduser()
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if is_locked(path) else None


def is_locked(path: Path) -> bool:
    """Whether a live process holds ``path``'s lock (i.e. a stack runs there)."""
    try:
        descriptor = os.open(Path(path) / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False
    finally:
        os.close(descriptor)
