"""Predict metrics counted in memory (services/serving_metrics.py): one write per app-minute per
flush, a flush when the counts are older than the interval (what runs on Lambda, whose timer
thread sleeps between requests), nothing lost on close or on a failed write, and the metrics
endpoint's window adds what is not written yet."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.latency import latency_bucket
from chalicelib.services.serving_metrics import MetricsBuffer

from unit.services.fakes import T0, FakeAppMetricsStore

APP = "u#app"


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> FakeAppMetricsStore:
    return FakeAppMetricsStore()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def buffer(store, ticker) -> MetricsBuffer:
    return MetricsBuffer(store, flush_seconds=10, ticker=ticker, timer=False)


def record(buffer, at=T0, latency_ms=3.0, queries=2, error=False, default=False, batch_size=4, app=APP):
    buffer.record(app, at, latency_ms, queries, error, default, batch_size=batch_size)


def test_counts_of_an_app_minute_are_written_in_one_write(buffer, store):
    record(buffer)
    record(buffer, latency_ms=300.0, error=True, batch_size=None)
    record(buffer, at=T0 + timedelta(seconds=30), default=True)
    record(buffer, app="u#other")
    assert store.calls["add_minute"] == 0
    buffer.flush()
    assert store.calls["add_minute"] == 2  # one per app-minute
    window = store.window(APP, T0)
    assert {k: window[k] for k in ("requests", "queries", "errors", "defaults", "batches", "batch_size_sum")} == {
        "requests": 3, "queries": 6, "errors": 1, "defaults": 1, "batches": 2, "batch_size_sum": 8}
    assert window["histogram"][latency_bucket(3.0)] == 2 and window["histogram"][latency_bucket(300.0)] == 1
    buffer.flush()
    assert store.calls["add_minute"] == 2  # nothing left to write


def test_a_request_flushes_counts_older_than_the_interval(buffer, store, ticker):
    record(buffer)
    buffer.flush_if_due()
    assert store.calls["add_minute"] == 0
    ticker.now += 9.9
    record(buffer)
    buffer.flush_if_due()
    assert store.calls["add_minute"] == 0
    ticker.now += 0.1  # the oldest count is 10 s old
    buffer.flush_if_due()
    assert store.calls["add_minute"] == 1 and buffer.pending() == 0
    record(buffer)
    buffer.flush_if_due()  # a new interval starts with the next count
    assert store.calls["add_minute"] == 1 and buffer.pending() == 1


def test_a_failed_write_keeps_its_counts_for_the_next_flush(buffer, store):
    record(buffer)
    store.fail_once("add_minute", RuntimeError("throttled"))
    buffer.flush()
    assert buffer.pending() == 1 and store.window(APP, T0)["requests"] == 0
    assert buffer.window(APP, T0)["requests"] == 1  # still seen
    record(buffer)
    buffer.flush()
    assert buffer.pending() == 0 and store.window(APP, T0)["requests"] == 2


def test_the_window_adds_unwritten_counts_once(buffer, store):
    record(buffer)
    buffer.flush()
    record(buffer, at=T0 + timedelta(minutes=1))
    record(buffer, at=T0 - timedelta(minutes=10))  # before the window
    window = buffer.window(APP, T0)
    assert window["requests"] == 2 and sum(window["histogram"]) == 2
    assert store.window(APP, T0)["requests"] == 1


def test_close_writes_what_is_left(store, ticker):
    buffer = MetricsBuffer(store, flush_seconds=3600, ticker=ticker)  # with its timer thread
    record(buffer)
    record(buffer, app="u#other")
    buffer.close()
    assert store.calls["add_minute"] == 2 and buffer.pending() == 0


def test_the_timer_thread_flushes_on_its_own(store):
    import time

    buffer = MetricsBuffer(store, flush_seconds=0.05)
    record(buffer)
    deadline = time.monotonic() + 5
    while buffer.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert buffer.pending() == 0 and store.calls["add_minute"] == 1
    buffer.close()
