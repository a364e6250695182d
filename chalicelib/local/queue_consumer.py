"""The one SQS receive loop of the local stack's consumers (the stand-ins for SQS-triggered
Lambdas and for Batch): long-poll, hand the batch to :meth:`QueueConsumer.handle_batch`, delete
the batch once handled. If ``handle_batch`` raises, nothing is deleted and SQS delivers the
messages again, as it does for a Lambda whose batch failed."""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Optional

log = logging.getLogger("kilele.local")


class QueueConsumer:
    """Receives up to :meth:`capacity` messages at a time from one queue in a thread."""

    name = "queue-consumer"

    def __init__(self, queue_url: str, sqs: Any, wait_seconds: int = 1):
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self._sqs = sqs
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._receive_error: Optional[str] = None  # the last receive's failure, until one succeeds

    def capacity(self) -> int:
        """How many messages may be taken now (at most 10)."""
        return 10

    def handle(self, body: dict[str, Any]) -> None:
        """Process one message body (JSON-decoded); the default :meth:`handle_batch` calls it."""
        raise NotImplementedError

    def handle_batch(self, bodies: list[str]) -> None:
        """The batch hook. By default each body goes to :meth:`handle`; a message that fails is
        logged and still deleted (redelivering it would fail the same way)."""
        for body in bodies:
            try:
                self.handle(json.loads(body))
            except Exception:  # noqa: BLE001 - one bad message must not stop the others
                log.exception("%s: handling a message failed", self.name)

    def start(self, context: Any = None) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.wait_seconds + 5)

    def alive(self) -> bool:
        """Whether the receive loop runs (or was asked to stop): the stack's watcher restarts it if not."""
        return self._stop.is_set() or bool(self._thread and self._thread.is_alive())

    def health(self) -> dict[str, Any]:
        """``{"ok", "detail"}`` for ``GET /``: the loop runs and its last receive worked."""
        if not self.alive():
            return {"ok": False, "detail": "its receive loop ended"}
        if self._receive_error:
            return {"ok": False, "detail": f"cannot receive: {self._receive_error}"}
        return {"ok": True, "detail": "receiving"}

    def _loop(self) -> None:
        while not self._stop.is_set():
            room = min(10, self.capacity())
            if room <= 0:
                self._stop.wait(0.05)
                continue
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=room, WaitTimeSeconds=self.wait_seconds
                ).get("Messages", [])
            except Exception as e:  # noqa: BLE001 - the emulated AWS is going away, or hiccuped: retry shortly
                self._receive_error = f"{type(e).__name__}: {str(e)[:200]}"
                if not self._stop.wait(0.5):
                    log.exception("%s: receiving failed", self.name)
                continue
            self._receive_error = None
            if not messages:
                if not self.wait_seconds:  # no long poll to pause in: do not spin
                    self._stop.wait(0.05)
                continue
            try:
                self.handle_batch([message["Body"] for message in messages])
            except Exception:  # noqa: BLE001
                log.exception("%s: %d messages failed; they will be delivered again", self.name, len(messages))
                continue
            self._delete(messages)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        except Exception:  # noqa: BLE001 - handled already; a redelivery is handled again
            log.exception("%s: deleting %d messages failed", self.name, len(messages))
