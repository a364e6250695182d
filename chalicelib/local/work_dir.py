"""The local stack's run-time directory (``<temp dir>/kilele-local-*``), and the removal of
those that stacks killed with SIGKILL left behind.

Everything the stack's runners make while it runs lives under one such directory per stack:
the trial runner's job directories and, inside them, the workers' trial directories; the
endpoint runner's endpoint directories with their sockets and the servers' temp files
(``TMPDIR``). A stack that stops removes its directory; one that is SIGKILLed cannot. So the
directory holds a lock file its stack keeps locked (``flock``) as long as it runs: the kernel
drops the lock when the process dies, however it dies, and every stack that starts removes the
directories whose lock is free (:func:`remove_stale`).

Why not in the data directory: that one is its owner's only (0700), while model code runs as
users of its own (kilele.sandbox) that must reach their working directories.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Optional

PREFIX = "kilele-local-"
#: Locked by the owning stack while it runs. A directory without it (a stack of an older
#: version, or one not yet made) is left alone.
LOCK_NAME = ".owner.lock"


class WorkDir:
    """A new ``kilele-local-*`` directory under ``root`` (default: the system temp directory),
    locked by this process until :meth:`remove`."""

    def __init__(self, root: Optional[Path] = None):
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
        self._lock: Optional[int] = None
        # Locked under another name, then renamed: a sweeper only looks at LOCK_NAME, so it
        # never sees this directory's lock before it is held.
        pending = self.path / f"{LOCK_NAME}.{os.getpid()}"
        descriptor = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(descriptor, f"{os.getpid()}\n".encode())
            os.rename(pending, self.path / LOCK_NAME)
        except BaseException:
            os.close(descriptor)
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        self._lock = descriptor  # not inherited by children (PEP 446): only this process holds it

    def remove(self) -> None:
        """Delete the directory and everything in it, then let the lock go."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def remove_stale(root: Optional[Path] = None) -> list[Path]:
    """Delete every ``kilele-local-*`` directory under ``root`` (default: the system temp
    directory) that is this user's and whose stack no longer runs (its lock is free); returns
    what was deleted. A directory whose lock is held, or that has no lock file, is kept."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for path in sorted(root.glob(f"{PREFIX}*")):
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            continue  # a symlink, a file, or another user's: not ours to judge
        try:
            descriptor = os.open(path / LOCK_NAME, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # its stack runs
        else:
            shutil.rmtree(path, ignore_errors=True)  # holding the lock: no stack can adopt it meanwhile
            removed.append(path)
        finally:
            os.close(descriptor)
    return removed


__all__ = ["WorkDir", "remove_stale", "PREFIX", "LOCK_NAME"]
