"""The local stack's trial runner: consumes the trials queue (the AWS twin is the
``dispatch_trials`` Lambda) and hands each message to the local trial dispatcher, as many at
once as ``local_max_parallel_trials`` allows."""
from __future__ import annotations

from typing import Any

from chalicelib.adapters.trial_dispatch.local import LocalTrialDispatcher
from chalicelib.local.queue_consumer import QueueConsumer


class TrialRunner(QueueConsumer):
    """Consumes the trials queue and runs each message with :class:`LocalTrialDispatcher`."""

    name = "trial-runner"

    def __init__(self, queue_url: str, sqs: Any, dispatcher: LocalTrialDispatcher, max_parallel: int):
        super().__init__(queue_url, sqs)
        self.dispatcher = dispatcher
        self.max_parallel = max_parallel

    def start(self, context: Any = None) -> None:
        self.dispatcher.start()  # the warm workers get ready while the first trials are proposed
        super().start(context)

    def capacity(self) -> int:
        return self.max_parallel - self.dispatcher.running

    def handle(self, body: dict[str, Any]) -> None:
        self.dispatcher.dispatch(body)

    def stop(self) -> None:
        super().stop()
        self.dispatcher.terminate_all()


__all__ = ["TrialRunner"]
