"""The local stack's stand-in for the queue API's SQS-triggered Lambda: receives up to 10
serving-queue messages at a time and hands them, as one batch, to the same service method
the Lambda calls (:meth:`ServingQueueService.process`)."""
from __future__ import annotations

from typing import Any

from chalicelib.local.queue_consumer import QueueConsumer, log


class ServingQueueConsumer(QueueConsumer):
    name = "serving-consumer"

    def handle(self, body: dict[str, Any]) -> None:
        self.handle_batch([body])

    def handle_batch(self, bodies: list[Any]) -> None:
        from chalicelib.wiring import services  # the stack's current services (built after _adopt)

        services().queues.process(bodies)

    def _loop(self) -> None:
        # Like QueueConsumer's loop, but one batch per receive, and messages are deleted only
        # after their results are written: if processing raises, SQS delivers them again.
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_seconds
                ).get("Messages", [])
            except Exception:  # the emulated AWS is going away, or hiccuped: retry shortly
                if not self._stop.wait(0.5):
                    log.exception("%s: receiving failed", self.name)
                continue
            if not messages:
                if not self.wait_seconds:  # no long poll to pause in: do not spin
                    self._stop.wait(0.05)
                continue
            try:
                self.handle_batch([message["Body"] for message in messages])
            except Exception:
                log.exception("%s: processing %d messages failed; they will be delivered again",
                              self.name, len(messages))
                continue
            try:
                self._sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            except Exception:  # their results are written; a redelivery only rewrites them
                log.exception("%s: deleting %d messages failed", self.name, len(messages))

