"""moto's Step Functions made to take a task's heartbeat and answer as AWS does, in the local
stack's moto child (moto 5.2.5, pinned in requirements-local.txt).

moto hands a waitForTaskToken task's token out (the service call: the run token's S3 putObject,
an SQS message) *before* the task sets up its heartbeat
(``StateTaskServiceCallback._eval_integration_pattern``). In between:

- a SendTaskHeartbeat is answered InvalidToken, where AWS accepts it (the task exists);
- a SendTaskSuccess/Failure is kept, but the heartbeat wait set up after it never hears of it:
  the task waits out its HeartbeatSeconds and fails States.HeartbeatTimeout, where AWS ends it
  with the answer.

On a loaded machine that moment lasted long enough for started workers to meet the first
(a trial recorded WorkerLost, see kilele_worker/heartbeats.py, which copes with it on any
emulator); a short run (a model check) can meet the second. :func:`install` makes a heartbeat
before the set-up count, and the set-up start from what came before it.
"""
from __future__ import annotations

from typing import Any, Optional

#: Set on a patched class (install is idempotent).
PATCHED = "_kilele_heartbeat_before_setup"


def install(endpoint_class: Optional[type] = None) -> bool:
    """Patch moto's ``CallbackEndpoint`` (``endpoint_class``: that class or a subclass, for
    tests). False when this moto has no such class (another version: nothing is changed)."""
    if endpoint_class is None:
        try:
            from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint
        except ImportError:
            return False
        endpoint_class = CallbackEndpoint
    if endpoint_class.__dict__.get(PATCHED):
        return True
    setup = endpoint_class.setup_heartbeat_endpoint
    notify_heartbeat = endpoint_class.notify_heartbeat

    def early_notify_heartbeat(self: Any) -> bool:
        if getattr(self, "_heartbeat_endpoint", None) is None:
            self._kilele_early_heartbeat = True  # the task exists; its heartbeat is set up a moment later
            return True
        return notify_heartbeat(self)

    def setup_after_what_came(self: Any, heartbeat_seconds: int) -> Any:
        endpoint = setup(self, heartbeat_seconds=heartbeat_seconds)
        # An answer or a heartbeat that came before the set-up: the wait starts from it. (An answer
        # stores its outcome, then looks for the heartbeat endpoint; this sets the endpoint, then
        # looks for the outcome: one of the two always sees the other.)
        if getattr(self, "_kilele_early_heartbeat", False) or self.get_outcome() is not None:
            endpoint.notify()
        return endpoint

    endpoint_class.notify_heartbeat = early_notify_heartbeat
    endpoint_class.setup_heartbeat_endpoint = setup_after_what_came
    setattr(endpoint_class, PATCHED, True)
    return True


__all__ = ["install"]
