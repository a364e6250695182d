"""The stack watching itself, without starting it: ``GET /`` with the components' health, the
watcher's restarts and its loud stop, the moto child's gate, and the data directory's lock."""
from __future__ import annotations

import json
import threading
import time

import pytest

from chalicelib.local.data_dir import DataDir, DataDirBusy, read_state
from chalicelib.local.moto_server import Gate, _changes
from chalicelib.local.watch import Restarts, Watcher, health_overlay


def index_app(environ, start_response):
    body = json.dumps({"service": "kilele", "status": "ok"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def get(app, path="/"):
    answer = {}
    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": path},
                        lambda status, headers: answer.update(status=status, headers=dict(headers))))
    return answer["status"], answer["headers"], json.loads(body)


def test_get_root_reports_each_component_and_is_a_503_naming_the_ones_down():
    health = {"moto": {"ok": True, "detail": "ok"}, "trial-runner": {"ok": True, "detail": "receiving"}}
    app = health_overlay(index_app, lambda: health)
    status, headers, body = get(app)
    assert status.startswith("200") and body["components"] == health and body["status"] == "ok"

    health["moto"] = {"ok": False, "detail": "moto is not running (exit code -9)"}
    status, headers, body = get(app)
    assert status.startswith("503") and body["status"] == "unavailable"
    assert body["error"]["code"] == "unavailable" and "moto" in body["error"]["message"]
    assert "exit code -9" in body["error"]["message"] and "trial-runner" not in body["error"]["message"]
    assert int(headers["Content-Length"]) == len(json.dumps(body).encode())


def test_other_routes_pass_through_untouched():
    calls = []
    app = health_overlay(index_app, lambda: calls.append(1) or {})
    status, _, body = get(app, "/users")
    assert status.startswith("200") and "components" not in body and calls == []


def test_restarts_are_counted_in_a_sliding_window():
    now = [0.0]
    restarts = Restarts(2, 60, clock=lambda: now[0])
    assert restarts.allow() and restarts.allow() and not restarts.allow()
    now[0] = 61
    assert restarts.allow()


class FakeMoto:
    def __init__(self):
        self.running, self.starts = True, 0

    def alive(self):
        return self.running

    def health(self):
        return {"ok": self.running, "detail": "ok" if self.running else "moto is not running (exit code -9)"}


class FakeConsumer:
    name = "trial-runner"

    def __init__(self):
        self.running, self.starts = True, 0

    def alive(self):
        return self.running

    def start(self, context):
        self.running, self.starts = True, self.starts + 1


class FakeStack:
    def __init__(self, restart_error=None):
        self.moto, self.components, self.context = FakeMoto(), [FakeConsumer()], object()
        self.failures, self.restart_error = [], restart_error

    def restart_moto(self):
        if self.restart_error:
            raise self.restart_error
        self.moto.running, self.moto.starts = True, self.moto.starts + 1

    def fail(self, reason):
        self.failures.append(reason)


def test_the_watcher_restarts_moto_and_consumers_then_stops_the_stack_loudly():
    stack = FakeStack()
    watcher = Watcher(stack, max_restarts=2, window_seconds=300)
    for _ in range(2):
        stack.moto.running = False
        stack.components[0].running = False
        watcher.check()
    assert (stack.moto.starts, stack.components[0].starts, stack.failures) == (2, 2, [])
    assert [event.split(" (")[0].split(";")[0] for event in watcher.events] == ["moto stopped", "trial-runner stopped"] * 2

    stack.moto.running = False
    watcher.check()
    assert stack.moto.starts == 2 and len(stack.failures) == 1
    assert "moto (the emulated AWS) stopped more than 2 times" in stack.failures[0]


def test_an_api_server_whose_thread_ended_stops_the_stack():
    stack = FakeStack()
    stack.api = FakeMoto()
    stack.api.running = False
    Watcher(stack).check()
    assert stack.failures == ["the API server's thread ended"] and stack.moto.starts == 0


def test_moto_that_cannot_start_again_stops_the_stack_with_why():
    stack = FakeStack(restart_error=RuntimeError("port taken"))
    stack.moto.running = False
    Watcher(stack).check()
    assert len(stack.failures) == 1 and "port taken" in stack.failures[0]


def test_the_watcher_thread_reports_its_health():
    watcher = Watcher(FakeStack(), interval_seconds=0.05)
    assert watcher.health()["ok"] is False
    watcher.start()
    try:
        assert watcher.health() == {"ok": True, "detail": "watching"}
    finally:
        watcher.stop()


def test_the_gate_holds_a_snapshot_until_the_requests_inside_are_done_and_new_ones_wait():
    gate, order = Gate(), []
    inside, release = threading.Event(), threading.Event()

    def request(name, hold=None):
        with gate.request(changes=True):
            order.append(f"{name} in")
            if hold:
                inside.set()
                hold.wait(5)
            order.append(f"{name} out")

    first = threading.Thread(target=request, args=("first", release))
    first.start()
    inside.wait(5)

    def snapshot():
        with gate.still():
            order.append("snapshot")
            time.sleep(0.1)

    taker = threading.Thread(target=snapshot)
    taker.start()
    time.sleep(0.1)
    second = threading.Thread(target=request, args=("second",))
    second.start()
    time.sleep(0.1)
    assert order == ["first in"]  # the snapshot waits for the first; the second waits for the snapshot
    release.set()
    for thread in (first, taker, second):
        thread.join(5)
    assert order == ["first in", "first out", "snapshot", "second in", "second out"] and gate.dirty


@pytest.mark.parametrize("environ, changes", [
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.PutItem"}, True),
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Query"}, False),
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AWSStepFunctions.SendTaskSuccess"}, True),
    ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/bucket/key"}, True),
    ({"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket/key"}, False),
    ({"REQUEST_METHOD": "POST", "PATH_INFO": "/moto-api/config"}, False),
])
def test_which_requests_make_the_next_snapshot_due(environ, changes):
    assert _changes(environ) is changes


def test_one_stack_per_data_dir_and_its_state_file_while_it_runs(tmp_path):
    first = DataDir(tmp_path)
    first.acquire()
    first.write_state(api_url="http://127.0.0.1:8000")
    assert read_state(tmp_path)["api_url"] == "http://127.0.0.1:8000"
    with pytest.raises(DataDirBusy, match="another local stack .*http://127.0.0.1:8000"):
        DataDir(tmp_path).acquire()
    first.release()
    assert read_state(tmp_path) is None
    second = DataDir(tmp_path)
    second.acquire()
    second.release()


def test_a_state_file_left_by_a_killed_stack_is_not_a_running_stack(tmp_path):
    (tmp_path / "stack.json").write_text(json.dumps({"pid": 999999, "api_url": "http://127.0.0.1:1"}))
    (tmp_path / "stack.lock").write_text("")
    assert read_state(tmp_path) is None
