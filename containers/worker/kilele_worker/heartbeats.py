"""The worker's heartbeats: every ``heartbeat_seconds`` a SendTaskHeartbeat with the run's token,
and the one judgement made from the answers: does the execution still wait for this run?

TaskTimedOut and TaskDoesNotExist say no at once, and so does InvalidToken once a heartbeat
with the token was accepted (moto answers a stopped execution's tokens so). InvalidToken
*before* any heartbeat was accepted is asked again, every :data:`UNSETTLED_RETRY_SECONDS`,
for up to ``settle_seconds`` (:attr:`kilele_worker.settings.WorkerSettings.token_settle_seconds`):
Step Functions emulators (moto 5.2.5, whose interpreter is LocalStack's) hand a waitForTaskToken
task's token out (the run token's S3 object, the queue message) before the task sets up its
heartbeat, and answer a heartbeat in between InvalidToken. On a loaded machine a started worker
sent its first heartbeat in that window, took it for "nobody waits" and left without
reporting; the dispatcher then failed the run as WorkerLost (a timed-out trial recorded
WorkerLost, a model check recorded as an extra, failed trial).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from kilele_worker.aws import AwsClients, describe, error_code, token_gone
from kilele_worker.message import TrialSpec
from kilele_worker.trial_log import TrialLog

#: How soon an unsettled InvalidToken is asked again (not a heartbeat period later).
UNSETTLED_RETRY_SECONDS = 0.25


class Monitor(threading.Thread):
    """Every ``heartbeat_seconds``: SendTaskHeartbeat. Sets :attr:`token_gone` (and ``wake``)
    when the execution no longer waits for the token: it timed out, or it was stopped (a stopped
    train job stops its slots' executions). ``settle_seconds``: how long InvalidToken before the
    first accepted heartbeat is asked again rather than believed (see the module's docstring)."""

    def __init__(self, aws: AwsClients, token: str, trial: TrialSpec, log: TrialLog, wake: threading.Event,
                 upload_log: Optional[Callable[[], None]] = None, log_upload_seconds: float = 2.0,
                 settle_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic):
        super().__init__(name=f"kilele-monitor-{trial.id}", daemon=True)
        self._aws, self._token, self._trial, self._log, self._wake = aws, token, trial, log, wake
        self._upload_log, self._log_every = upload_log, max(0.05, log_upload_seconds)
        self._halt = threading.Event()
        self._clock = clock
        self._settle_until = clock() + settle_seconds
        self._accepted = False  # a heartbeat with this token went through
        self.unsettled = False  # the last heartbeat got InvalidToken within the settle bound: ask again soon
        self.unsettled_seen = False
        self.token_gone: Optional[str] = None

    def run(self) -> None:
        heartbeat_due = 0.0
        while not self._halt.is_set():
            if self._clock() >= heartbeat_due:
                heartbeat_due = self._clock() + self._trial.heartbeat_seconds
                try:
                    self.check_once()
                except Exception as e:  # noqa: BLE001 - the monitor must keep running
                    self._log.worker(f"monitor check failed: {describe(e)}")
                if self.token_gone:
                    self._wake.set()
                    return
                if self.unsettled:
                    heartbeat_due = self._clock() + min(UNSETTLED_RETRY_SECONDS, self._trial.heartbeat_seconds)
            if self._upload_log is not None:
                self._upload_log()  # the log so far: readable while the run goes on
            self._halt.wait(min(self._log_every, max(0.0, heartbeat_due - self._clock())) or 0.05)

    def halt(self) -> None:
        self._halt.set()

    def check_once(self) -> None:
        self.unsettled = False
        try:
            self._aws.sfn.send_task_heartbeat(taskToken=self._token)
        except Exception as e:  # noqa: BLE001
            if not token_gone(e):
                self._log.worker(f"heartbeat failed (will retry): {describe(e)}")
            elif error_code(e) == "InvalidToken" and not self._accepted and self._clock() < self._settle_until:
                if not self.unsettled_seen:
                    self._log.worker("heartbeat: InvalidToken before any heartbeat was accepted; the task may "
                                     "not be set up yet (an emulator answers so for a moment): asking again")
                self.unsettled = self.unsettled_seen = True
            else:
                self.token_gone = f"the execution no longer waits for this trial ({error_code(e)})"
            return
        self._accepted = True


__all__ = ["Monitor", "UNSETTLED_RETRY_SECONDS"]
