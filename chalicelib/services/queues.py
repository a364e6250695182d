"""Cluster Serving's pub/sub inference (seed 003) on SQS: items enqueued to a named serving
queue (one of the caller's apps), answered in batches by a consumer through
:meth:`PredictService.predict_queries`, one result per uri in the serving-results table.

On AWS the consumer is an SQS-triggered Lambda (app.py); locally the serving consumer of the
local stack (chalicelib/local/serving_consumer.py). Both call :meth:`ServingQueueService.process`.
"""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Union

from chalicelib.entities import ERROR, OK, ServingResult, User, queue_key
from chalicelib.errors import DomainError, InvalidInput, NotFound, PayloadTooLarge, Unavailable
from chalicelib.permissions import Action, require
from chalicelib.services import Clock, utc_now
from chalicelib.services.predict import Outcome
from chalicelib.ports import MAX_QUEUE_MESSAGE_BYTES, QueueUnreachable, RequestQueue, ServingResultStore

log = logging.getLogger("kilele.queues")

# A result item must fit DynamoDB's 400 KB item limit with its keys and other attributes.
MAX_RESULT_VALUE_BYTES = 350 * 1024

PredictQueries = Callable[[str, str, list[Any]], Outcome]


class EnqueueIncomplete(Unavailable):
    """Some items were not enqueued; ``failed`` lists their uris (the others were enqueued)."""

    def __init__(self, message: str, enqueued: int, failed: list[str]):
        super().__init__(message)
        self.enqueued = enqueued
        self.failed = failed


@dataclass
class Processed:
    """What one :meth:`ServingQueueService.process` call did."""

    results: int = 0
    errors: int = 0
    groups: int = 0
    malformed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"results": self.results, "errors": self.errors, "groups": self.groups,
                "malformed": len(self.malformed)}


@dataclass
class _Message:
    user_id: str
    queue: str
    uri: str
    data: Any


class ServingQueueService:
    def __init__(
        self,
        requests: RequestQueue,
        results: ServingResultStore,
        predict_queries: PredictQueries,
        max_backlog: int,
        result_ttl_seconds: int,
        clock: Clock = utc_now,
        max_parallel_groups: int = 4,
    ):
        self._requests = requests
        self._results = results
        self._predict = predict_queries
        self._max_backlog = max_backlog
        self._ttl = result_ttl_seconds
        self._clock = clock
        self._parallel = max(1, max_parallel_groups)

    # ------------------------------------------------------------------ the API

    def enqueue(self, actor: User, queue: str, items: list[tuple[str, Any]]) -> dict[str, Any]:
        """Send ``(uri, data)`` items to the serving queue: all of them, or an error naming
        those that were not sent. Nothing is sent when the request is refused (400/413/503)."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        seen: set[str] = set()
        for uri, _ in items:
            if uri in seen:
                raise InvalidInput(f"uri {uri!r} appears twice; each item of a request needs its own uri")
            seen.add(uri)
        enqueued_at = self._clock().isoformat()
        bodies = [
            json.dumps({"user_id": actor.id, "queue": queue, "uri": uri, "data": data, "enqueued_at": enqueued_at},
                       separators=(",", ":"))
            for uri, data in items
        ]
        for (uri, _), body in zip(items, bodies):
            size = len(body.encode())
            if size > MAX_QUEUE_MESSAGE_BYTES:
                raise PayloadTooLarge(f"item {uri!r} is {size} bytes as a queue message; the limit is "
                                      f"{MAX_QUEUE_MESSAGE_BYTES} (use POST /apps/{{app}}/predict for larger inputs)")
        try:
            backlog = self._requests.backlog()
        except QueueUnreachable as e:
            raise Unavailable(f"the serving queue cannot be reached: {e}") from e
        if backlog + len(items) > self._max_backlog:
            raise Unavailable(f"queue full: {backlog} items are waiting and {len(items)} more would pass the limit "
                              f"of {self._max_backlog}; nothing was enqueued, retry later")
        failed = self._requests.send(bodies)
        if failed:
            uris = [items[index][0] for index in sorted(failed)]
            reasons = sorted(set(failed.values()))
            raise EnqueueIncomplete(
                f"{len(items) - len(failed)} of {len(items)} items were enqueued; not enqueued (retry these): "
                f"{', '.join(repr(u) for u in uris)} ({'; '.join(reasons)})",
                enqueued=len(items) - len(failed),
                failed=uris,
            )
        return {"enqueued": len(items)}

    def get_result(self, actor: User, queue: str, uri: str) -> dict[str, Any]:
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        result = self._results.get(queue_key(actor.id, queue), uri)
        if result is None:
            raise NotFound(f"no result yet for {uri} in queue {queue!r} (pending, expired, dequeued or never enqueued)")
        return result.to_dict()

    def dequeue(self, actor: User, queue: str) -> dict[str, Any]:
        """Every current result of the queue, deleted as it is read (each result goes to one
        reader only, also when several dequeue at once)."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        results: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for result in self._results.list(queue_key(actor.id, queue)):
            if not self._results.take(result):
                continue
            if result.status == OK:
                results[result.uri] = result.decoded_value()
            else:
                errors[result.uri] = result.error or "the prediction failed"
        return {"results": results, "errors": errors}

    # ------------------------------------------------------------------ the consumer

    def process(self, bodies: Iterable[Union[str, dict[str, Any]]]) -> Processed:
        """Answer a batch of queue messages: one ``predict_queries`` call per (user, queue),
        one result per uri. Returns after every result is written; raises if writing fails
        (the messages must then stay in the queue, to be delivered again)."""
        report = Processed()
        groups: "OrderedDict[tuple[str, str], list[_Message]]" = OrderedDict()
        for body in bodies:
            message = _parse(body)
            if message is None:
                text = body if isinstance(body, str) else json.dumps(body, default=str)
                log.error("serving queue: dropping a malformed message: %.500s", text)
                report.malformed.append(text[:500])
                continue
            groups.setdefault((message.user_id, message.queue), []).append(message)
        report.groups = len(groups)
        if not groups:
            return report
        work = list(groups.values())
        # The first group in this thread: it creates the lazily built AWS clients (creating boto3
        # clients from several threads at once is not safe), the others then run side by side.
        answered = [self._answer(work[0])]
        if len(work) > 1 and self._parallel > 1:
            with ThreadPoolExecutor(max_workers=min(self._parallel, len(work) - 1),
                                    thread_name_prefix="serving-queue") as pool:
                answered += list(pool.map(self._answer, work[1:]))
        else:
            answered += [self._answer(group) for group in work[1:]]
        # One result per key (a uri enqueued twice may arrive twice in a batch: the last one wins,
        # and BatchWriteItem refuses duplicate keys).
        results = list({(r.queue_key, r.uri): r for group in answered for r in group}.values())
        self._results.put_many(results)
        report.results = len(results)
        report.errors = sum(r.status == ERROR for r in results)
        return report

    def _answer(self, messages: list[_Message]) -> list[ServingResult]:
        user_id, queue = messages[0].user_id, messages[0].queue
        try:
            outcome = self._predict(user_id, queue, [m.data for m in messages])
            if outcome is None or len(outcome.predictions) != len(messages):
                count = None if outcome is None else len(outcome.predictions)
                raise RuntimeError(f"the model answered {count} predictions for {len(messages)} queries")
        except InvalidInput as e:
            if len(messages) > 1:  # find the bad queries: the others still get their predictions
                return [r for m in messages for r in self._answer([m])]
            return [self._error(messages[0], e.message)]
        except DomainError as e:
            return [self._error(m, e.message) for m in messages]
        except Exception as e:  # a bug or an outage: the items get an error result, never dropped
            log.exception("serving queue: predicting %d items of %s#%s failed", len(messages), user_id, queue)
            return [self._error(m, f"internal error ({type(e).__name__}); the service logged it") for m in messages]
        return [self._ok(m, p, outcome.default) for m, p in zip(messages, outcome.predictions)]

    def _ok(self, message: _Message, prediction: Any, default: bool) -> ServingResult:
        value = json.dumps(prediction, separators=(",", ":"))
        if len(value.encode()) > MAX_RESULT_VALUE_BYTES:
            return self._error(message, f"the prediction is {len(value.encode())} bytes as JSON; queue results "
                                        f"hold at most {MAX_RESULT_VALUE_BYTES} (use POST /apps/{{app}}/predict)")
        return self._result(message, OK, value=value, default=default)

    def _error(self, message: _Message, error: str) -> ServingResult:
        return self._result(message, ERROR, error=error[:2000])

    def _result(self, message: _Message, status: str, value: Optional[str] = None, error: Optional[str] = None,
                default: bool = False) -> ServingResult:
        now = self._clock()
        return ServingResult(
            queue_key=queue_key(message.user_id, message.queue),
            uri=message.uri,
            status=status,
            created_at=now,
            expires_at=int(now.timestamp()) + self._ttl,
            value=value,
            error=error,
            default=default,
        )


def _parse(body: Union[str, dict[str, Any]]) -> Optional[_Message]:
    try:
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        message = _Message(data["user_id"], data["queue"], data["uri"], data["data"])
    except (ValueError, TypeError, KeyError):
        return None
    if not all(isinstance(v, str) and v for v in (message.user_id, message.queue, message.uri)):
        return None
    return message
