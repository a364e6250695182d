"""The heartbeat monitor and a token that is not set up yet.

Step Functions emulators write a waitForTaskToken task's token (the run token, S3 putObject)
before the task sets up its heartbeat; a heartbeat in between is answered InvalidToken (moto
5.2.5: StateTaskServiceCallback sets the heartbeat endpoint up after the service call). On a
loaded machine a started worker read the token and sent its first heartbeat in that window,
took InvalidToken for "nobody waits", left without reporting, and the trial was recorded
WorkerLost (a model check: an extra, failed trial record). The monitor now asks again within a
bound until a heartbeat is accepted; once one was, InvalidToken means the execution stopped."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from botocore.exceptions import ClientError

from kilele_worker.heartbeats import Monitor
from kilele_worker.settings import DEFAULT_TOKEN_SETTLE_SECONDS as RUN_TOKEN_SETTLE_SECONDS
from kilele_worker.trial_log import TrialLog


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "SendTaskHeartbeat")


class _Sfn:
    """Answers each SendTaskHeartbeat with the next scripted outcome (an error code, or None: accepted)."""

    def __init__(self, outcomes: list) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def send_task_heartbeat(self, taskToken: str) -> dict:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise _error(outcome)
        return {}


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _monitor(outcomes: list, settle_seconds: float, clock=time.monotonic, heartbeat_seconds: float = 10.0):
    sfn = _Sfn(outcomes)
    trial = SimpleNamespace(id="t1", heartbeat_seconds=heartbeat_seconds)
    log = TrialLog()
    monitor = Monitor(SimpleNamespace(sfn=sfn), "token", trial, log, threading.Event(),
                      settle_seconds=settle_seconds, clock=clock)
    return monitor, sfn, log


def test_invalid_token_before_the_first_accepted_heartbeat_is_asked_again_not_believed():
    clock = _Clock()
    monitor, _, log = _monitor(["InvalidToken", "InvalidToken", None, "InvalidToken"], RUN_TOKEN_SETTLE_SECONDS, clock)
    monitor.check_once()
    assert monitor.token_gone is None and monitor.unsettled
    clock.now += 0.25
    monitor.check_once()
    assert monitor.token_gone is None and monitor.unsettled
    clock.now += 0.25
    monitor.check_once()  # the task is set up: accepted
    assert monitor.token_gone is None and not monitor.unsettled
    assert log.text().count("asking again") == 1
    monitor.check_once()  # accepted before: now InvalidToken means the execution was stopped
    assert monitor.token_gone == "the execution no longer waits for this trial (InvalidToken)"


def test_invalid_token_past_the_settle_bound_means_nobody_waits():
    clock = _Clock()
    monitor, _, _ = _monitor(["InvalidToken", "InvalidToken"], RUN_TOKEN_SETTLE_SECONDS, clock)
    monitor.check_once()
    assert monitor.token_gone is None
    clock.now += RUN_TOKEN_SETTLE_SECONDS
    monitor.check_once()
    assert monitor.token_gone == "the execution no longer waits for this trial (InvalidToken)"


def test_a_timed_out_or_unknown_task_is_believed_at_once():
    for code in ("TaskTimedOut", "TaskDoesNotExist"):
        monitor, _, _ = _monitor([code], RUN_TOKEN_SETTLE_SECONDS, _Clock())
        monitor.check_once()
        assert monitor.token_gone == f"the execution no longer waits for this trial ({code})"


def test_without_a_settle_bound_invalid_token_is_believed_at_once():
    monitor, _, _ = _monitor(["InvalidToken"], 0.0, _Clock())
    monitor.check_once()
    assert monitor.token_gone is not None


def test_the_running_monitor_asks_again_soon_rather_than_a_heartbeat_period_later():
    monitor, sfn, _ = _monitor(["InvalidToken", "InvalidToken"], RUN_TOKEN_SETTLE_SECONDS, heartbeat_seconds=30.0)
    monitor.start()
    try:
        deadline = time.monotonic() + 10
        while sfn.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        monitor.halt()
        monitor.join(5)
    assert sfn.calls >= 3  # two InvalidToken, then accepted: not one heartbeat per 30 s
    assert monitor.token_gone is None
