"""Adaptive batching (Clipper's AIMD) in front of the ensemble.

Every request's queries join one queue. One batcher coroutine takes up to ``batch_size`` queries
(waiting at most ``max_wait`` for more when fewer are queued), runs the ensemble once on them in
the model thread, and hands each request its own answers, in order. A request larger than the
batch is split over consecutive batches; its answers are put back at their offsets.

Queries that arrive while a batch computes queue up and form the next batch at once (Clipper's
"natural" batching). The batcher waits up to ``max_wait`` for more only when clients are
concurrent, i.e. when requests arrived while the previous batch computed: a lone client (one
request at a time) is never delayed by the wait.

Every request has a deadline (its own, else the server's ``call_timeout``). A batch runs until
the earliest deadline among its requests; past it the call is abandoned (``on_stuck`` replaces
the model thread and its models), the requests whose deadline has passed get
:class:`ModelTimeout`, and the others are evaluated again, each request alone, so that one slow
query costs only its own request (a request timed out twice fails).

The batch size target follows AIMD on the batch's compute latency: +``step`` after a full batch
that stayed under ``target_latency``, ×``backoff`` after a batch that exceeded it, within
``[1, max_batch_size]``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Sequence

from kilele_inference.errors import InvalidInput, ModelError, ModelTimeout, NotReady, ServingError
from kilele_inference.ensemble import Failed, Rejected

logger = logging.getLogger("kilele_inference")


class AIMDController:
    """The batch size target: additive increase while under the latency target, multiplicative
    decrease when over it. Pure (no clock): callers report each batch's size and latency."""

    def __init__(self, target_latency_s: float = 0.020, initial: float = 8, step: float = 4,
                 backoff: float = 0.75, min_size: int = 1, max_size: int = 256):
        if not 0 < backoff < 1:
            raise ValueError("backoff must be in (0, 1)")
        if not 1 <= min_size <= max_size:
            raise ValueError("need 1 <= min_size <= max_size")
        self.target_latency_s = target_latency_s
        self.step = step
        self.backoff = backoff
        self.min_size = min_size
        self.max_size = max_size
        self.target = float(min(max(initial, min_size), max_size))
        self.increases = 0
        self.decreases = 0

    @property
    def batch_size(self) -> int:
        return max(self.min_size, min(self.max_size, int(self.target)))

    def record(self, size: int, latency_s: float) -> None:
        """One batch of ``size`` queries took ``latency_s`` to compute."""
        if latency_s > self.target_latency_s:
            self.target = max(float(self.min_size), self.target * self.backoff)
            self.decreases += 1
        elif size >= self.batch_size:
            # Only a full batch is evidence that a larger one is needed and affordable; under light
            # load the target stays where the last full batch left it.
            self.target = min(float(self.max_size), self.target + self.step)
            self.increases += 1


@dataclass(eq=False)
class _Request:
    queries: Sequence[Any]
    arrays: Optional[Sequence[Any]]
    single: bool
    future: asyncio.Future
    results: list = field(default_factory=list)
    taken: int = 0  # queries already put into a batch
    left: int = 0  # queries not answered yet
    deadline: float = float("inf")  # event-loop time past which its batch is abandoned
    retried: bool = False  # it was in an abandoned batch once already
    batch_size: int = 0  # the largest batch its queries rode in

    def label(self, index: int) -> str:
        return "the query" if self.single else f"query {index}"


@dataclass
class BatchStats:
    batches: int = 0
    queries: int = 0
    compute_seconds: float = 0.0
    last_latency_s: float = 0.0
    abandoned: int = 0  # batches abandoned past their deadline


class Batcher:
    """Queues requests' queries and answers them from batched ensemble runs.

    ``evaluate(queries, arrays)`` runs in ``executor`` and returns one outcome per query (an
    answer or :class:`Rejected`), as :meth:`Ensemble.evaluate` does. With ``batching=False``
    each request is evaluated alone, in arrival order, on the same thread.
    """

    def __init__(self, evaluate: Callable[[Sequence[Any], Optional[Sequence[Any]]], list],
                 executor: Optional[Executor], controller: Optional[AIMDController] = None,
                 max_wait_s: float = 0.002, batching: bool = True,
                 clock: Callable[[], float] = time.perf_counter, call_timeout_s: Optional[float] = None,
                 on_stuck: Optional[Callable[[], Awaitable[None]]] = None, min_call_timeout_s: float = 0.0):
        """``call_timeout_s``: the longest a request waits for its batch (None: no deadline; only
        with an ``executor``, as a call on the event loop cannot be abandoned); ``on_stuck`` is
        awaited after a batch was abandoned, before the next one runs: it replaces ``executor``
        and ``evaluate`` (the abandoned call keeps the old ones). No call is abandoned before
        ``min_call_timeout_s``, whatever a request's own deadline: under a tight latency budget a
        batch that is merely late must not cost a reload of the models."""
        self.evaluate = evaluate
        self.call_timeout_s = call_timeout_s
        self.min_call_timeout_s = min_call_timeout_s
        self.on_stuck = on_stuck
        self._retries: deque[tuple[_Request, int, int]] = deque()
        self.executor = executor
        self.controller = controller or AIMDController()
        self.max_wait_s = max_wait_s
        self.batching = batching
        self.clock = clock
        self.stats = BatchStats()
        self._queue: deque[_Request] = deque()
        self._queued = 0  # queries in the queue not yet taken
        self._want = 1  # wake the batcher when this many queries are queued
        self._wakeup: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._closing = False
        self._arrivals = 0  # requests submitted so far
        self._concurrent = False  # whether requests arrived while the last batch computed (see _run)

    @property
    def batch_size(self) -> int:
        return self.controller.batch_size if self.batching else 0

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kilele-batcher")

    async def stop(self) -> None:
        """Answers everything queued, then stops."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task

    async def submit(self, queries: Sequence[Any], arrays: Optional[Sequence[Any]] = None,
                     single: bool = False, timeout_s: Optional[float] = None) -> list[Any]:
        """The ensemble's answers for a request's queries, in order. Raises :class:`InvalidInput`
        naming the first rejected query, :class:`ModelError` when the model failed or its answer
        is unusable, :class:`ModelTimeout` past the deadline (``timeout_s``, at most the
        batcher's ``call_timeout_s``)."""
        return (await self.submit_sized(queries, arrays, single, timeout_s))[0]

    async def submit_sized(self, queries: Sequence[Any], arrays: Optional[Sequence[Any]] = None,
                           single: bool = False, timeout_s: Optional[float] = None) -> tuple[list[Any], int]:
        """:meth:`submit`, and the size of the largest batch the request's queries rode in."""
        if self._closing or self._task is None:
            raise NotReady("the server is shutting down")
        if not queries:
            return [], 0
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        request = _Request(queries, arrays, single, future, results=[None] * len(queries), left=len(queries))
        limits = [t for t in (timeout_s, self.call_timeout_s) if t is not None]
        if limits:
            request.deadline = loop.time() + max(self.min_call_timeout_s, min(limits))
        self._queue.append(request)
        self._queued += len(queries)
        self._arrivals += 1
        if self._queued >= self._want:
            self._wakeup.set()
        return await future, request.batch_size

    # -- the batcher loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._retries:  # the survivors of an abandoned batch, each request alone
                segments = [self._retries.popleft()]
                if segments[0][0].future.done():
                    continue
            elif not self._queue:
                if self._closing:
                    return
                self._want = 1
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            else:
                size = self.controller.batch_size if self.batching else 0
                if (self.batching and self._queued < size and self.max_wait_s > 0 and not self._closing
                        and self._concurrent):
                    await self._wait_for(loop, size)
                segments = self._take(size)
                if not segments:
                    continue
            queries: list[Any] = []
            arrays: Optional[list[Any]] = []
            for request, start, end in segments:
                queries.extend(request.queries[start:end])
                if request.arrays is None:
                    arrays = None
                elif arrays is not None:
                    arrays.extend(request.arrays[start:end])
            arrivals = self._arrivals
            started = self.clock()
            deadline = float("-inf")  # the batch's, once it runs under one
            try:
                if self.executor is None:
                    outcomes = self.evaluate(queries, arrays)
                else:
                    call = loop.run_in_executor(self.executor, self.evaluate, queries, arrays)
                    deadline = min(request.deadline for request, _, _ in segments)
                    if deadline == float("inf"):
                        outcomes = await call
                    else:
                        outcomes = await asyncio.wait_for(call, max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                await self._abandon(loop, segments, self.clock() - started, deadline)
                continue
            except ServingError as e:
                self._fail(segments, e)
                continue
            except Exception as e:  # a bug: answer 500 and keep serving
                logger.exception("evaluating a batch of %d queries failed", len(queries))
                self._fail(segments, ModelError(f"evaluating the batch failed: {type(e).__name__}: {e}"))
                continue
            latency = self.clock() - started
            # Requests that arrived while this batch computed (or still queued behind it) mean
            # concurrent clients: the next batch may wait for more. A lone client never waits.
            self._concurrent = self._arrivals != arrivals or len(self._queue) > 0
            self.stats.batches += 1
            self.stats.queries += len(queries)
            self.stats.compute_seconds += latency
            self.stats.last_latency_s = latency
            if self.batching:
                self.controller.record(len(queries), latency)
            for request, _, _ in segments:
                request.batch_size = max(request.batch_size, len(queries))
            self._deliver(segments, outcomes)

    async def _abandon(self, loop: asyncio.AbstractEventLoop, segments: list[tuple[_Request, int, int]],
                       waited: float, deadline: float) -> None:
        """A batch ran past its earliest deadline (``deadline``): fail the requests out of time,
        evaluate the others again (each alone), and have the model thread replaced first."""
        self.stats.abandoned += 1
        size = sum(end - start for _, start, end in segments)
        logger.warning("a batch of %d queries did not finish within its deadline (%.3f s): abandoned; "
                       "the model thread is replaced", size, waited)
        # The request(s) whose deadline was the batch's are out of time by definition, even when
        # the loop's timer fired a hair before the clock reads that deadline (asyncio runs a timer
        # within its clock resolution of when it is due): they are never retried.
        now = max(loop.time(), deadline) if deadline != float("inf") else loop.time()
        for request, start, end in segments:
            if request.future.done():
                continue
            if request.retried or now >= request.deadline:
                request.future.set_exception(ModelTimeout(
                    f"the model did not answer within the deadline ({waited:.3g} s): the call was abandoned "
                    "and the model replaced"))
            else:
                request.retried = True
                self._retries.append((request, start, end))
        if self.on_stuck is not None:
            try:
                await self.on_stuck()
            except Exception as e:  # noqa: BLE001 - no model to ask: fail what waits for one
                logger.exception("replacing the model thread failed")
                while self._retries:
                    self._fail([self._retries.popleft()], ModelError(f"the model could not be reloaded: {e}"))

    async def _wait_for(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        """Waits until ``size`` queries are queued or ``max_wait_s`` has passed."""
        self._want = size
        self._wakeup.clear()
        timer = loop.call_later(self.max_wait_s, self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            timer.cancel()
            self._want = 1

    def _take(self, size: int) -> list[tuple[_Request, int, int]]:
        """Up to ``size`` queued queries (0: one whole request) as (request, start, end) slices."""
        segments: list[tuple[_Request, int, int]] = []
        room = size if size > 0 else None
        while self._queue and (room is None or room > 0):
            request = self._queue[0]
            if request.future.done():  # already failed (a bad query) or cancelled: skip the rest
                self._queue.popleft()
                self._queued -= len(request.queries) - request.taken
                continue
            remaining = len(request.queries) - request.taken
            count = remaining if room is None else min(remaining, room)
            segments.append((request, request.taken, request.taken + count))
            request.taken += count
            self._queued -= count
            if request.taken == len(request.queries):
                self._queue.popleft()
            if room is None:
                break
            room -= count
        return segments

    def _deliver(self, segments: list[tuple[_Request, int, int]], outcomes: list) -> None:
        if len(outcomes) != sum(end - start for _, start, end in segments):
            self._fail(segments, ModelError("the ensemble answered a different number of queries than it was given"))
            return
        position = 0
        for request, start, end in segments:
            chunk = outcomes[position:position + end - start]
            position += end - start
            if request.future.done():
                continue
            for offset, outcome in enumerate(chunk):
                if isinstance(outcome, Failed):
                    request.future.set_exception(ModelError(outcome.message(request.label(start + offset))))
                    break
                if isinstance(outcome, Rejected):
                    request.future.set_exception(InvalidInput(outcome.message(request.label(start + offset))))
                    break
                request.results[start + offset] = outcome
            else:
                request.left -= end - start
                if request.left == 0:
                    request.future.set_result(request.results)

    @staticmethod
    def _fail(segments: list[tuple[_Request, int, int]], error: Exception) -> None:
        for request, _, _ in segments:
            if not request.future.done():
                request.future.set_exception(error)
