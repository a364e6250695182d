"""The capture writer: SageMaker Data Capture's layout, hourly partitions, flushes on size, time
and stop, failed writes kept, and no record lost or written twice with concurrent writers."""
from __future__ import annotations

import json
import logging
import re
import threading
from datetime import datetime, timedelta, timezone

from chalicelib.capture_format import CapturedQuery
from chalicelib.services.capture import CaptureBuffer, captured


class FakeBlobStore:
    """The part of the BlobStore port the writer uses: objects by key; ``failures`` makes
    ``put_bytes`` raise."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.failures: dict[str, BaseException] = {}

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        if "put_bytes" in self.failures:
            raise self.failures["put_bytes"]
        self.objects[key] = bytes(data)
        self.content_types[key] = content_type

T0 = datetime(2026, 12, 2, 9, 59, 58, 123000, tzinfo=timezone.utc)
KEY = re.compile(r"^capture/(?P<user>[^/]+)/(?P<app>[^/]+)/(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/"
                 r"(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/(?P<h>\d\d)/\d\d-\d\d-\d{3}-[0-9a-f]{32}\.jsonl$")


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def records(blobs: FakeBlobStore) -> list[dict]:
    return [json.loads(line) for data in blobs.objects.values() for line in data.decode().splitlines()]


def queries(n: int, at: datetime = T0, start: int = 0) -> list[CapturedQuery]:
    return captured([str(start + i) for i in range(n)], [[i, i + 0.5] for i in range(n)],
                    [{"label": i % 2} for i in range(n)], at, default=False)


def test_records_in_sagemaker_layout_and_hourly_partitions():
    blobs, ticker = FakeBlobStore(), Ticker()
    buffer = CaptureBuffer(blobs, timer=False, ticker=ticker, clock=lambda: T0)
    buffer.add("u1", "iris", "ep-1", queries(2, T0))
    buffer.add("u1", "iris", "ep-1", queries(1, T0 + timedelta(seconds=3), start=2))  # 10:00:01: next hour
    buffer.add("u1", "iris", None, captured(["9"], [[0, 0]], ["fallback"], T0, default=True))
    assert blobs.objects == {}  # nothing written before a flush
    buffer.flush()
    keys = sorted(blobs.objects)
    parts = [KEY.match(k).groupdict() for k in keys]
    assert [(p["endpoint"], p["variant"], p["h"]) for p in parts] == [
        ("default-output", "AllTraffic", "09"), ("ep-1", "AllTraffic", "09"), ("ep-1", "AllTraffic", "10")]
    assert {(p["user"], p["app"], p["y"], p["m"], p["d"]) for p in parts} == {("u1", "iris", "2026", "12", "02")}
    assert all(blobs.content_types[k] == "application/jsonl" for k in keys)
    first = json.loads(blobs.objects[keys[1]].decode().splitlines()[0])
    assert set(first) == {"captureData", "eventMetadata", "eventVersion"} and first["eventVersion"] == "0"
    assert first["captureData"]["endpointInput"] == {
        "observedContentType": "application/json", "mode": "INPUT", "data": "[0,0.5]", "encoding": "JSON"}
    assert first["captureData"]["endpointOutput"] == {
        "observedContentType": "application/json", "mode": "OUTPUT", "data": '{"label":0}', "encoding": "JSON"}
    meta = first["eventMetadata"]
    assert meta["inferenceId"] == "0" and meta["inferenceTime"] == "2026-12-02T09:59:58.123Z"
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["eventId"]) and "kileleDefault" not in meta
    default = json.loads(blobs.objects[keys[0]])
    assert default["eventMetadata"]["kileleDefault"] is True
    assert default["captureData"]["endpointOutput"]["data"] == '"fallback"'
    assert len(records(blobs)) == 4 and buffer.written == 4 and buffer.pending() == 0


def test_flush_on_time_only_when_due():
    blobs, ticker = FakeBlobStore(), Ticker()
    buffer = CaptureBuffer(blobs, flush_seconds=30, timer=False, ticker=ticker)
    buffer.add("u", "a", "ep", queries(3))
    ticker.now = 29.9
    buffer.flush_if_due()
    assert blobs.objects == {}
    ticker.now = 30.0
    buffer.flush_if_due()
    assert len(records(blobs)) == 3


def test_flush_on_size_thresholds():
    blobs = FakeBlobStore()
    by_count = CaptureBuffer(blobs, flush_seconds=3600, max_records=5, timer=False, ticker=Ticker())
    by_count.add("u", "a", "ep", queries(4))
    assert by_count.pending() == 4 and not blobs.objects
    by_count.add("u", "a", "ep", queries(1, start=4))
    assert by_count.pending() == 0 and len(records(blobs)) == 5
    by_bytes = CaptureBuffer(FakeBlobStore(), flush_seconds=3600, max_bytes=1000, timer=False, ticker=Ticker())
    by_bytes.add("u", "a", "ep", queries(1))
    assert by_bytes.pending() == 1
    by_bytes.add("u", "a", "ep", queries(10, start=1))  # ~300 bytes a record
    assert by_bytes.pending() == 0


def test_size_threshold_wakes_the_background_flush():
    blobs = FakeBlobStore()
    buffer = CaptureBuffer(blobs, flush_seconds=3600, max_records=10)
    try:
        buffer.add("u", "a", "ep", queries(10))
        for _ in range(200):
            if buffer.written == 10:
                break
            threading.Event().wait(0.01)
        assert buffer.written == 10 and len(records(blobs)) == 10
    finally:
        buffer.close()


def test_background_timer_flushes_and_close_writes_the_rest():
    blobs = FakeBlobStore()
    buffer = CaptureBuffer(blobs, flush_seconds=0.05)
    buffer.add("u", "a", "ep", queries(2))
    for _ in range(200):
        if buffer.written == 2:
            break
        threading.Event().wait(0.01)
    assert buffer.written == 2
    slow = CaptureBuffer(FakeBlobStore(), flush_seconds=3600)
    slow.add("u", "a", "ep", queries(7))
    slow.close()  # a clean stop loses nothing
    assert slow.written == 7 and slow.pending() == 0
    buffer.close()


def test_a_failed_write_keeps_its_records_for_the_next_flush():
    blobs = FakeBlobStore()
    buffer = CaptureBuffer(blobs, timer=False, ticker=Ticker())
    buffer.add("u", "a", "ep", queries(3))
    blobs.failures["put_bytes"] = RuntimeError("S3 is down")
    buffer.flush()
    assert buffer.pending() == 3 and buffer.written == 0 and not blobs.objects
    del blobs.failures["put_bytes"]
    buffer.flush()
    assert buffer.pending() == 0 and sorted(r["eventMetadata"]["inferenceId"] for r in records(blobs)) == ["0", "1", "2"]


def test_records_past_the_pending_limit_are_dropped_counted_and_logged():
    blobs = FakeBlobStore()
    buffer = CaptureBuffer(blobs, timer=False, ticker=Ticker(), max_records=10**6, max_bytes=10**9,
                           max_pending_bytes=1000)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("kilele.capture")
    logger.addHandler(handler)  # on the logger itself: another test's logging set-up may stop propagation
    try:
        buffer.add("u", "a", "ep", queries(2))
        buffer.add("u", "a", "ep", queries(10, start=2))
    finally:
        logger.removeHandler(handler)
    assert buffer.pending() == 2 and buffer.dropped == 10
    assert any("dropped" in message for message in seen)


def test_large_partitions_are_split_into_files():
    blobs = FakeBlobStore()
    buffer = CaptureBuffer(blobs, timer=False, ticker=Ticker(), max_file_bytes=1000)
    buffer.add("u", "a", "ep", queries(20))
    buffer.flush()
    assert len(blobs.objects) > 1 and all(len(v) <= 1000 for v in blobs.objects.values())
    assert len(records(blobs)) == 20


def test_no_loss_and_no_duplicates_with_concurrent_writers():
    blobs = FakeBlobStore()
    lock = threading.Lock()
    original = blobs.put_bytes

    def put_bytes(key, data, content_type="application/octet-stream"):
        with lock:  # the fake's dict is not what is under test
            original(key, data, content_type)

    blobs.put_bytes = put_bytes
    buffer = CaptureBuffer(blobs, flush_seconds=0.001, max_records=50)
    writers, per_writer = 8, 500

    def write(w: int) -> None:
        for i in range(per_writer):
            buffer.add("u", "a", "ep", queries(1, start=w * per_writer + i))
            if i % 37 == 0:
                buffer.flush_if_due()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    buffer.close()
    ids = [r["eventMetadata"]["inferenceId"] for r in records(blobs)]
    assert len(ids) == writers * per_writer
    assert sorted(ids, key=int) == [str(i) for i in range(writers * per_writer)]
