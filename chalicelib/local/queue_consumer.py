"""A background SQS long-poll loop, the base of the local stack's runners."""
from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from typing import Any, Optional

import boto3

log = logging.getLogger("kilele.local")


class QueueConsumer(ABC):
    """Receives messages from one queue while :meth:`capacity` allows, hands each body to
    :meth:`handle` and deletes it once handled (a crash before that makes SQS redeliver it)."""

    name = "queue-consumer"

    def __init__(self, queue_url: str, wait_seconds: int = 1):
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self._sqs = boto3.client("sqs")
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def capacity(self) -> int:
        """How many messages may be taken now (at most 10)."""
        return 10

    @abstractmethod
    def handle(self, body: dict[str, Any]) -> None:
        """Process one message body (JSON-decoded)."""

    def start(self, context: Any = None) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.wait_seconds + 5)

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
            except Exception:  # the emulated AWS is going away, or hiccuped: retry shortly
                if not self._stop.wait(0.5):
                    log.exception("%s: receiving failed", self.name)
                continue
            for message in messages:
                try:
                    self.handle(json.loads(message["Body"]))
                except Exception:
                    log.exception("%s: handling a message failed", self.name)
                self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
