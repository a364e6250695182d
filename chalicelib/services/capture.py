"""Traffic capture: a sample of an app's answered queries, buffered in memory and written to the
blob store in SageMaker Data Capture's layout (chalicelib/capture_format.py says the layout).

The predict path only encodes its queries' records and appends them to an in-memory partition
(app, endpoint, variant, hour) under a lock; the writes happen elsewhere, so capture adds no
object-store call to a request. Files are written:

- every ``flush_seconds`` on a background thread (started with the first record);
- at once (by that thread) when the buffer holds ``max_records`` records or ``max_bytes`` bytes;
- at the end of a request that finds the oldest unwritten record older than ``flush_seconds``
  (:meth:`CaptureBuffer.flush_if_due`): on AWS Lambda the thread is frozen between invocations,
  so this is what writes there;
- on :meth:`CaptureBuffer.close` (``Services.close()``: the local stack calls it when it stops).

One file per partition and flush (split at ``max_file_bytes``). A failed write keeps its
records for the next flush (logged). What may be lost: a process that is killed, or a Lambda
execution environment AWS reclaims, loses the records it had not written: at most
``flush_seconds`` (or ``max_records``) of that process's captured queries. If writes keep
failing, records past ``max_pending_bytes`` are dropped, counted and logged, rather than
growing the process without bound.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from chalicelib.capture_format import (NO_ENDPOINT, VARIANT, CapturedQuery, InferenceTimes, capture_key,
                                      encode_record, new_event_id)
from chalicelib.ports import BlobStore

log = logging.getLogger("kilele.capture")

MiB = 1024 * 1024
JSONL_TYPE = "application/jsonl"

_Partition = tuple[str, str, str, str, int]  # user id, app, endpoint, variant, epoch hour


class CaptureBuffer:
    def __init__(self, blobs: BlobStore, flush_seconds: float = 60.0, max_records: int = 5000,
                 max_bytes: int = 4 * MiB, max_file_bytes: int = 64 * MiB, max_pending_bytes: int = 256 * MiB,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 ticker: Callable[[], float] = time.monotonic, timer: bool = True):
        """``flush_seconds``, ``max_records``, ``max_bytes``: the time and size thresholds of a
        flush; ``clock``: names the files (the time written); ``ticker``: a monotonic clock in
        seconds (the flush schedule); ``timer``: flush on a background thread (off: flushes
        happen in :meth:`flush_if_due`, :meth:`add` past a size threshold, and :meth:`close`)."""
        self._blobs = blobs
        self._interval = max(0.0, flush_seconds)
        self._max_records, self._max_bytes = max(1, max_records), max(1, max_bytes)
        self._max_file_bytes, self._max_pending = max(1, max_file_bytes), max_pending_bytes
        self._clock, self._ticker = clock, ticker
        self._use_timer = timer and self._interval > 0
        self._parts: dict[_Partition, list[bytes]] = {}
        self._records = 0
        self._bytes = 0  # buffered, including records kept after a failed write
        self._oldest: Optional[float] = None
        self.dropped = 0  # records refused because writes kept failing (see max_pending_bytes)
        self.written = 0  # records written
        self._lock = threading.Lock()  # guards the buffer; never held during I/O
        self._flushing = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._times = InferenceTimes()

    def add(self, user_id: str, app: str, endpoint: Optional[str], queries: list[CapturedQuery]) -> None:
        """Buffer the records of ``queries``, answered by ``endpoint`` (None: no endpoint
        answered, the app's default output)."""
        by_hour: dict[int, list[bytes]] = {}
        for query in queries:
            time_text, hour = self._times(query.at)
            by_hour.setdefault(hour, []).append(encode_record(query.query_id, query.query, query.output, time_text,
                                                              query.default, new_event_id()))
        self._buffer(user_id, app, endpoint, by_hour)

    def add_answers(self, user_id: str, app: str, endpoint: Optional[str], query_ids: list[str],
                    queries: list[Any], outputs: list[Any], at: datetime, default: bool = False) -> None:
        """:meth:`add` for one request: its queries, their ids and answers, answered at ``at``
        (what the predict path has; no :class:`CapturedQuery` is built per query)."""
        time_text, hour = self._times(at)
        lines = [encode_record(query_id, query, output, time_text, default, new_event_id())
                 for query_id, query, output in zip(query_ids, queries, outputs)]
        self._buffer(user_id, app, endpoint, {hour: lines}, len(lines), sum(map(len, lines)) + len(lines))

    def _buffer(self, user_id: str, app: str, endpoint: Optional[str], by_hour: dict[int, list[bytes]],
                count: Optional[int] = None, size: Optional[int] = None) -> None:
        """Append ``by_hour``'s records (``count`` of them, ``size`` bytes with their newlines,
        when the caller has counted them)."""
        if count is None or size is None:
            count = sum(len(lines) for lines in by_hour.values())
            size = sum(sum(map(len, lines)) for lines in by_hour.values()) + count  # a newline per record
        endpoint_name = endpoint or NO_ENDPOINT
        full = False
        with self._lock:
            if self._bytes + size > self._max_pending:
                self.dropped += count
                dropped = self.dropped
            else:
                dropped = 0
                for hour, hour_lines in by_hour.items():
                    self._parts.setdefault((user_id, app, endpoint_name, VARIANT, hour), []).extend(hour_lines)
                self._records += count
                self._bytes += size
                if self._oldest is None:
                    self._oldest = self._ticker()
                full = self._records >= self._max_records or self._bytes >= self._max_bytes
        if dropped:
            log.error("capture buffer full (%d bytes unwritten): %d records of %s dropped, %d in all",
                      self._max_pending, count, app, dropped)
            return
        if self._use_timer:
            if self._thread is None:
                self._start_timer()
            if full:
                self._wake.set()
        elif full:
            self.flush_if_due(force=True)

    def flush_if_due(self, force: bool = False) -> None:
        """Flush if the oldest unwritten record is older than the interval (and no flush runs)."""
        oldest = self._oldest
        if oldest is None or (not force and self._ticker() - oldest < self._interval):
            return
        if self._flushing.acquire(blocking=False):
            try:
                self._flush_locked()
            finally:
                self._flushing.release()

    def flush(self) -> None:
        """Write every buffered record now."""
        with self._flushing:
            self._flush_locked()

    def pending(self) -> int:
        """Records buffered, not written yet."""
        with self._lock:
            return self._records

    def close(self) -> None:
        """Stop the timer and write what is left."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)
        self.flush()

    def _flush_locked(self) -> None:
        with self._lock:
            parts, self._parts = self._parts, {}
            self._records, self._bytes, self._oldest = 0, 0, None
        failed: dict[_Partition, list[bytes]] = {}
        for partition, lines in parts.items():
            user_id, app, endpoint, variant, hour = partition
            hour_start = datetime.fromtimestamp(hour * 3600, timezone.utc)
            for start, end in _chunks(lines, self._max_file_bytes):
                key = capture_key(user_id, app, endpoint, variant, hour_start, self._clock(), uuid.uuid4().hex)
                try:
                    self._blobs.put_bytes(key, b"\n".join(lines[start:end]) + b"\n", JSONL_TYPE)
                    self.written += end - start
                except Exception:  # noqa: BLE001 - keep the records for the next flush
                    log.exception("could not write %d captured records of %s to %s; kept for the next flush",
                                  end - start, app, key)
                    failed.setdefault(partition, []).extend(lines[start:end])
        if failed:
            with self._lock:
                for partition, lines in failed.items():
                    self._parts.setdefault(partition, []).extend(lines)
                    self._records += len(lines)
                    self._bytes += sum(len(line) + 1 for line in lines)
                if self._oldest is None:
                    self._oldest = self._ticker()

    def _start_timer(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="kilele-capture-flush", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return  # close() writes what is left
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the timer must survive a bad flush
                log.exception("capture flush failed")


def _chunks(lines: list[bytes], max_bytes: int) -> list[tuple[int, int]]:
    """Index ranges of ``lines`` of at most ``max_bytes`` each (a longer line alone)."""
    ranges, start, size = [], 0, 0
    for index, line in enumerate(lines):
        if size and size + len(line) + 1 > max_bytes:
            ranges.append((start, index))
            start, size = index, 0
        size += len(line) + 1
    if start < len(lines):
        ranges.append((start, len(lines)))
    return ranges


def captured(query_ids: list[str], queries: list[Any], outputs: list[Any], at: datetime,
             default: bool) -> list[CapturedQuery]:
    """The records of one answered request."""
    return [CapturedQuery(qid, q, o, at, default) for qid, q, o in zip(query_ids, queries, outputs)]
