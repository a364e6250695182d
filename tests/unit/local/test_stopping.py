"""The local stack's stop is bounded: independent parts stop at once, a part that does not stop
in time is named and left behind, slow steps are logged, and a stopped process ends at once
(chalicelib/local/stopping.py), and the parts' own waits are bounded (the Lambda shim)."""
from __future__ import annotations

import io
import sys
import threading
import time

from chalicelib.local.lambda_shim import LambdaShim
from chalicelib.local.stopping import SLOW_STEP_SECONDS, exit_now, stop_parts, timed


def test_parts_stop_at_once():
    # Each part finishes only once the other one has started: they cannot run one after another.
    both = threading.Barrier(2, timeout=5)
    lines: list[str] = []
    late = stop_parts([("a", both.wait), ("b", both.wait)], timeout_seconds=5, report=lines.append)
    assert late == [] and lines == []


def test_a_part_still_stopping_at_the_bound_is_named_and_the_rest_go_on():
    release = threading.Event()
    lines: list[str] = []
    started = time.monotonic()
    late = stop_parts([("stuck", lambda: release.wait(30)), ("quick", lambda: None)], timeout_seconds=0.2,
                      report=lines.append)
    took = time.monotonic() - started
    release.set()
    assert late == ["stuck"]
    assert took < 5, took
    assert lines == ["stuck still stopping after 0.2 s; stopping the rest"]


def test_a_part_that_fails_to_stop_is_reported_and_does_not_stop_the_others():
    stopped: list[str] = []
    lines: list[str] = []

    def broken() -> None:
        raise OSError("gone")

    late = stop_parts([("broken", broken), ("fine", lambda: stopped.append("fine"))], timeout_seconds=5,
                      report=lines.append)
    assert late == [] and stopped == ["fine"]
    assert lines == ["stopping broken failed: OSError: gone"]


def test_a_slow_step_is_logged_with_its_duration_and_a_quick_one_is_not():
    now = iter([0.0, SLOW_STEP_SECONDS + 0.5, 10.0, 10.2])
    lines: list[str] = []
    assert timed("moto", lambda: None, lines.append, clock=lambda: next(now)) == SLOW_STEP_SECONDS + 0.5
    assert timed("the API", lambda: None, lines.append, clock=lambda: next(now)) < SLOW_STEP_SECONDS
    assert lines == [f"stopping moto took {SLOW_STEP_SECONDS + 0.5:.1f} s"]


def test_exit_now_flushes_what_was_written_then_exits_with_the_code(monkeypatch):
    class Buffered(io.StringIO):
        flushed = False

        def flush(self) -> None:
            self.flushed = True

    out, err = Buffered(), Buffered()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    codes: list[int] = []
    exit_now(3, exit=codes.append)
    assert codes == [3] and out.flushed and err.flushed


class _Tokens:
    def succeed(self, token, output):
        return True

    def fail(self, token, error, cause):
        return True


class _NoMessages:
    def receive_message(self, **_):
        time.sleep(0.05)
        return {}


def test_the_lambda_shims_stop_waits_for_a_running_handler_only_its_grace():
    release = threading.Event()
    started = threading.Event()

    def invoke(function, payload):
        started.set()
        release.wait(30)  # a handler stuck on a loaded machine's emulated AWS

    shim = LambdaShim("queue", _NoMessages(), tokens=_Tokens(), invoke=invoke, threads=2)
    shim.start()
    shim.handle({"task_token": "t", "function": "propose", "input": {}})
    assert started.wait(5)
    before = time.monotonic()
    shim.stop(grace_seconds=0.2)
    took = time.monotonic() - before
    release.set()
    assert took < 5, took
