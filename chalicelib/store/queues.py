"""Results of the queue API (Cluster Serving's output queue): one item per queue and uri."""
from __future__ import annotations

import time
from typing import Callable, Iterable, Optional

from pynamodb.exceptions import DeleteError, DoesNotExist

from chalicelib.entities import ServingResult
from chalicelib.store.models import ServingResultItem
from chalicelib.store.repositories import _dt, _failed_condition, _iso


class ServingResultRepository:
    """Readers never see expired results: DynamoDB's TTL deletion lags (and moto never deletes)."""

    def __init__(self, now: Callable[[], float] = time.time):
        self._now = now

    def put_many(self, results: Iterable[ServingResult]) -> None:
        """Write (or overwrite) results; a failure raises, so the messages are not deleted."""
        with ServingResultItem.batch_write() as batch:
            for result in results:
                batch.save(ServingResultItem(
                    result.queue_key,
                    result.uri,
                    status=result.status,
                    value=result.value,
                    error=result.error,
                    default=result.default,
                    created_at=_iso(result.created_at),
                    expires_at=result.expires_at,
                ))

    def get(self, key: str, uri: str) -> Optional[ServingResult]:
        try:
            item = ServingResultItem.get(key, uri, consistent_read=True)
        except DoesNotExist:
            return None
        return None if self._expired(item) else self._entity(item)

    def list(self, key: str) -> list[ServingResult]:
        """The current (unexpired) results of a queue, by uri."""
        return [
            self._entity(item)
            for item in ServingResultItem.query(key, consistent_read=True)
            if not self._expired(item)
        ]

    def take(self, result: ServingResult) -> bool:
        """Delete ``result`` if it is still the one stored for its uri; False when another
        reader took it first or a newer result replaced it (which then stays for the next read)."""
        try:
            ServingResultItem(result.queue_key, result.uri).delete(
                condition=ServingResultItem.created_at == _iso(result.created_at)
            )
            return True
        except DeleteError as e:
            if _failed_condition(e):
                return False
            raise

    def _expired(self, item: ServingResultItem) -> bool:
        return int(item.expires_at) <= self._now()

    @staticmethod
    def _entity(item: ServingResultItem) -> ServingResult:
        return ServingResult(
            queue_key=item.queue_key,
            uri=item.uri,
            status=item.status,
            created_at=_dt(item.created_at),
            expires_at=int(item.expires_at),
            value=item.value,
            error=item.error,
            default=bool(item.default),
        )
