"""The local stack's stand-in for the queue API's SQS-triggered Lambda (``serve_queue_items``):
hands each received batch of up to 10 messages to the same service method the Lambda calls
(:meth:`ServingQueueService.process`). Messages are deleted only after their results are
written: if processing raises, SQS delivers them again."""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.local.queue_consumer import QueueConsumer


class ServingQueueConsumer(QueueConsumer):
    name = "serving-consumer"

    def __init__(self, queue_url: str, sqs: Any, process: Callable[[list[str]], Any], wait_seconds: int = 1):
        super().__init__(queue_url, sqs, wait_seconds)
        self._process = process

    def handle_batch(self, bodies: list[str]) -> None:
        self._process(bodies)  # raises -> the batch is not deleted
