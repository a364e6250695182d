"""Per-app predict metrics, counted in memory and written in batches.

Each request adds to an in-memory cell per (app, minute): the counters and the latency
histogram. :meth:`MetricsBuffer.flush` writes every cell with one atomic ``add_minute`` (one
DynamoDB UpdateItem per app-minute), so a busy app costs one write per flush instead of one per
request. Flushes happen:

- every ``flush_seconds`` on a timer thread (started with the first request);
- at the end of a request when the oldest unwritten count is older than ``flush_seconds``: on
  AWS Lambda the timer thread is frozen between invocations, so this is what flushes there;
- on :meth:`close` (``Services.close()``: the local stack calls it when it stops, before moto).

What may be lost: a Lambda execution environment that AWS reclaims without warning takes its
unwritten counts with it, at most one interval's (``flush_seconds``) of that instance's
requests; so does a process that is killed. A failed write keeps its counts for the next flush.

:meth:`window` (the metrics endpoint) adds this process's unwritten counts to the store's, so
a caller sees their requests at once, as when every request wrote its own. Other instances'
unwritten counts appear within one interval.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any, Callable, Optional

from chalicelib.latency import latency_bucket
from chalicelib.ports import AppMetricsStore

log = logging.getLogger("kilele.metrics")

COUNTERS = ("requests", "queries", "errors", "defaults", "batches", "batch_size_sum")


class _Cell:
    __slots__ = ("counters", "histogram")

    def __init__(self) -> None:
        self.counters: Counter = Counter()
        self.histogram: Counter = Counter()

    def merge(self, other: "_Cell") -> None:
        self.counters.update(other.counters)
        self.histogram.update(other.histogram)


class MetricsBuffer:
    def __init__(self, store: AppMetricsStore, flush_seconds: float,
                 ticker: Callable[[], float] = time.monotonic, timer: bool = True):
        """``ticker``: a monotonic clock in seconds (the flush schedule); ``timer``: flush on a
        background thread too (tests turn it off and flush by hand)."""
        self._store = store
        self._interval = max(0.0, flush_seconds)
        self._ticker = ticker
        self._use_timer = timer and self._interval > 0
        self._cells: dict[tuple[str, int], _Cell] = {}
        self._oldest: Optional[float] = None  # ticker time of the oldest unwritten count
        self._lock = threading.Lock()  # guards _cells and _oldest; never held during I/O
        self._flushing = threading.Lock()  # one flush at a time; window() waits for it
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def record(self, user_app: str, at: datetime, latency_ms: float, queries: int, error: bool, default: bool,
               batch_size: Optional[int] = None) -> None:
        key = (user_app, int(at.timestamp() // 60))
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = _Cell()
            counters = cell.counters
            counters["requests"] += 1
            counters["queries"] += queries
            if error:
                counters["errors"] += 1
            if default:
                counters["defaults"] += 1
            if batch_size:  # the size of the server-side batch this request's queries rode in
                counters["batches"] += 1
                counters["batch_size_sum"] += int(batch_size)
            cell.histogram[latency_bucket(latency_ms)] += 1
            if self._oldest is None:
                self._oldest = self._ticker()
        if self._use_timer and self._thread is None:
            self._start_timer()

    def flush_if_due(self) -> None:
        """Flush if the oldest unwritten count is older than the interval (and no flush runs)."""
        oldest = self._oldest
        if oldest is None or self._ticker() - oldest < self._interval:
            return
        if self._flushing.acquire(blocking=False):
            try:
                self._flush_locked()
            finally:
                self._flushing.release()

    def flush(self) -> None:
        with self._flushing:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._lock:
            cells, self._cells = self._cells, {}
            self._oldest = None
        failed: dict[tuple[str, int], _Cell] = {}
        for (user_app, minute), cell in cells.items():
            try:
                self._store.add_minute(user_app, minute, dict(cell.counters), dict(cell.histogram))
            except Exception:  # noqa: BLE001 - keep the counts for the next flush
                log.exception("could not write the metrics of %s, minute %s; kept for the next flush", user_app, minute)
                failed[(user_app, minute)] = cell
        if failed:
            with self._lock:
                for key, cell in failed.items():
                    current = self._cells.get(key)
                    if current is None:
                        self._cells[key] = cell
                    else:
                        current.merge(cell)
                if self._oldest is None:
                    self._oldest = self._ticker()

    def window(self, user_app: str, since: datetime) -> dict[str, Any]:
        """The store's counts since ``since`` plus this process's unwritten ones (``first_minute``:
        the earliest minute with counts, epoch seconds // 60, or None)."""
        first = int(since.timestamp() // 60)
        with self._flushing:  # no cell is in flight: each count is either written or buffered
            totals = self._store.window(user_app, since)
            with self._lock:
                cells = [(minute, c) for (app, minute), c in self._cells.items()
                         if app == user_app and minute >= first]
                minutes = [m for m in (totals.get("first_minute"), *(m for m, _ in cells)) if m is not None]
                totals["first_minute"] = min(minutes) if minutes else None
                for _, cell in cells:
                    for name in COUNTERS:
                        totals[name] = totals.get(name, 0) + cell.counters.get(name, 0)
                    histogram = totals["histogram"]
                    for bucket, n in cell.histogram.items():
                        histogram[bucket] += n
        return totals

    def pending(self) -> int:
        """Requests counted but not written yet."""
        with self._lock:
            return sum(c.counters["requests"] for c in self._cells.values())

    def close(self) -> None:
        """Stop the timer and write what is left."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self.flush()

    def _start_timer(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="kilele-metrics-flush", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the timer must survive a bad flush
                log.exception("metrics flush failed")
