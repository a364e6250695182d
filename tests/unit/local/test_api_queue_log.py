"""The local API server's waitress queue-depth warning: once per interval with what was skipped,
not once per request that waits for a busy thread."""
from __future__ import annotations

import http.client
import logging
import threading

from chalicelib.local.api_server import ApiServer, QueueDepthLog


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_warning_goes_out_once_per_interval_with_what_it_skipped(caplog):
    caplog.set_level(logging.WARNING, logger="test.queue")
    ticker = Ticker()
    log = QueueDepthLog(logging.getLogger("test.queue"), seconds=10, ticker=ticker)
    log.warning("Task queue depth is %d", 1)
    for depth in [2, 7, 3] * 100:
        ticker.now += 0.01
        log.warning("Task queue depth is %d", depth)
    assert [r.getMessage() for r in caplog.records] == [
        "Task queue depth is 1 (1 requests queued behind busy threads since the last such warning, the queue at "
        "most 1 deep; warned once per 10 s)"]
    ticker.now = 110.0  # the interval since the first warning is over
    log.warning("Task queue depth is %d", 4)
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage() == (
        "Task queue depth is 4 (301 requests queued behind busy threads since the last such warning, the queue at "
        "most 7 deep; warned once per 10 s)")
    assert caplog.records[1].levelno == logging.WARNING


def test_other_levels_go_to_the_logger_as_they_are(caplog):
    caplog.set_level(logging.INFO, logger="test.queue")
    log = QueueDepthLog(logging.getLogger("test.queue"))
    log.info("%d thread(s) still running", 2)
    log.info("%d thread(s) still running", 2)
    assert [r.getMessage() for r in caplog.records] == ["2 thread(s) still running"] * 2


def test_a_saturated_api_server_warns_once_not_per_queued_request(caplog):
    caplog.set_level(logging.WARNING, logger="waitress.queue")
    release, started = threading.Event(), threading.Event()

    def app(environ, start_response):
        started.set()
        release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = ApiServer(app, port=0, threads=1)
    server.start()
    statuses: list[int] = []

    def call() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request("GET", "/")
            statuses.append(connection.getresponse().status)
        finally:
            connection.close()

    clients = [threading.Thread(target=call) for _ in range(6)]
    try:
        clients[0].start()
        assert started.wait(10)  # the one thread is busy: the next five requests queue
        for client in clients[1:]:
            client.start()
        deadline = threading.Event()
        for _ in range(100):  # until waitress has queued all five (each one a warning before this change)
            if len(server._server.task_dispatcher.queue) >= 5:
                break
            deadline.wait(0.05)
        assert len(server._server.task_dispatcher.queue) >= 5
    finally:
        release.set()
        for client in clients:
            client.join(30)
        server.stop()
    assert statuses == [200] * 6
    warnings = [r.getMessage() for r in caplog.records if r.name == "waitress.queue"]
    assert len(warnings) == 1 and warnings[0].startswith("Task queue depth is 1 (1 requests queued"), warnings
