"""The queue API's SQS queue (resources.SERVING_REQUESTS_QUEUE): backlog and batched sends."""
from __future__ import annotations

import threading
from typing import Any, Optional

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.ports import MAX_QUEUE_MESSAGE_BYTES as MAX_MESSAGE_BYTES
from chalicelib.ports import QueueUnreachable

MAX_BATCH_ENTRIES = 10  # SQS's limit for one SendMessageBatch


class SqsRequestQueue:
    """Found by name (``GetQueueUrl``) on first use, so neither infra nor the local stack has to
    hand the API its URL."""

    def __init__(self, queue_name: str, client: Any):
        self.queue_name = queue_name
        self._sqs = client
        self._url: Optional[str] = None
        self._lock = threading.RLock()  # the API serves requests from several threads

    @property
    def url(self) -> str:
        with self._lock:
            if self._url is None:
                self._url = self._sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
            return self._url

    def backlog(self) -> int:
        """Messages waiting to be received (SQS's approximate count)."""
        try:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
        except (BotoCoreError, ClientError) as e:
            raise QueueUnreachable(str(e)) from e
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def send(self, bodies: list[str]) -> dict[int, str]:
        """Send every body (each at most :data:`MAX_MESSAGE_BYTES`) in batches of up to 10
        entries and 256 KiB; returns ``{index: reason}`` of the bodies that were NOT sent.

        A batch that fails as a whole stops the sending: it and every later body are reported,
        so the caller can retry exactly those."""
        failed: dict[int, str] = {}
        batches = _batches([len(b.encode()) for b in bodies])
        for position, batch in enumerate(batches):
            entries = [{"Id": str(index), "MessageBody": bodies[index]} for index in batch]
            try:
                answer = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            except (BotoCoreError, ClientError) as e:
                reason = f"the queue refused the batch: {e}"
                for rest in batches[position:]:
                    failed.update({index: reason for index in rest})
                break
            for entry in answer.get("Failed", []):
                failed[int(entry["Id"])] = f"{entry.get('Code', 'error')}: {entry.get('Message', 'not sent')}"
        return failed


def _batches(sizes: list[int]) -> list[list[int]]:
    """Indexes grouped in order into SendMessageBatch calls (<= 10 entries, <= 256 KiB each)."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, size in enumerate(sizes):
        if current and (len(current) == MAX_BATCH_ENTRIES or total + size > MAX_MESSAGE_BYTES):
            batches.append(current)
            current, total = [], 0
        current.append(index)
        total += size
    if current:
        batches.append(current)
    return batches
