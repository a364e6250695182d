"""The trial log: timestamped plain-text lines, capped (head and tail kept), echoed to stdout.

The same text is stored at the trial's ``logs_key`` locally and on AWS. Each line is
``2026-11-23T10:00:00.123Z [worker] text`` (the supervisor) or ``... [model] text`` (the model
process's stdout and stderr).
"""
from __future__ import annotations

import collections
import sys
import threading
from datetime import datetime, timezone
from typing import Optional, TextIO

DEFAULT_CAP_BYTES = 5 * 1024 * 1024
MAX_LINE_CHARS = 16 * 1024


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TrialLog:
    """Thread-safe. Keeps the first ``cap_bytes / 2`` and the last ``cap_bytes / 2`` bytes of lines."""

    def __init__(self, cap_bytes: int = DEFAULT_CAP_BYTES, echo: Optional[TextIO] = None):
        self._half = max(1024, cap_bytes // 2)
        self._head: list[str] = []
        self._head_bytes = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_bytes = 0
        self._omitted_lines = 0
        self._omitted_bytes = 0
        self._lock = threading.Lock()
        self._echo = echo
        self._echo_stopped = False
        #: Lines added so far: the streaming upload sends the log again only when it grew.
        self.version = 0

    def worker(self, text: str) -> None:
        self._add("worker", text)

    def model(self, text: str) -> None:
        self._add("model", text)

    def _add(self, source: str, text: str) -> None:
        for part in text.rstrip("\n").split("\n") or [""]:
            if len(part) > MAX_LINE_CHARS:
                part = part[:MAX_LINE_CHARS] + f" [... line cut at {MAX_LINE_CHARS} characters]"
            self._append(f"{utc_now_iso()} [{source}] {part}\n")

    def _append(self, line: str) -> None:
        size = len(line.encode("utf-8", "replace"))
        with self._lock:
            self.version += 1
            if self._head_bytes + size <= self._half and not self._tail:
                self._head.append(line)
                self._head_bytes += size
                self._write_echo(line)
                return
            if not self._echo_stopped:
                self._echo_stopped = True
                self._write_echo(f"{utc_now_iso()} [worker] the log passed {self._half} bytes: further lines "
                                 "are not echoed; the stored log keeps its head and tail\n")
            self._tail.append(line)
            self._tail_bytes += size
            while self._tail_bytes > self._half and len(self._tail) > 1:
                dropped = self._tail.popleft()
                dropped_size = len(dropped.encode("utf-8", "replace"))
                self._tail_bytes -= dropped_size
                self._omitted_lines += 1
                self._omitted_bytes += dropped_size

    def _write_echo(self, line: str) -> None:
        if self._echo is None:
            return
        try:
            self._echo.write(line)
            self._echo.flush()
        except (OSError, ValueError):  # a closed stdout must not stop the trial
            pass

    def text(self) -> str:
        with self._lock:
            parts = list(self._head)
            if self._omitted_lines:
                parts.append(f"[... {self._omitted_lines} lines ({self._omitted_bytes} bytes) omitted: "
                             f"the log keeps its first and last {self._half} bytes ...]\n")
            parts.extend(self._tail)
        return "".join(parts)

    def tail_text(self, lines: int = 40) -> str:
        with self._lock:
            source = list(self._tail)[-lines:] if self._tail else self._head[-lines:]
        return "".join(source)


def default_echo() -> TextIO:
    return sys.stdout
