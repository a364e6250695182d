"""AIMD and the batcher, with a fake clock and a fake ensemble (no HTTP, no threads)."""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kilele_inference.batching import AIMDController, Batcher
from kilele_inference.ensemble import Rejected
from kilele_inference.errors import InvalidInput, ModelError


def test_aimd_grows_additively_and_backs_off_multiplicatively():
    aimd = AIMDController(target_latency_s=0.020, initial=8, step=4, backoff=0.75, max_size=256)
    assert aimd.batch_size == 8
    aimd.record(8, 0.005)  # a full batch under the target: +4
    assert aimd.batch_size == 12
    aimd.record(3, 0.001)  # a partial batch is no evidence for a larger one
    assert aimd.batch_size == 12
    aimd.record(12, 0.030)  # over the target: x0.75
    assert aimd.batch_size == 9
    for _ in range(100):
        aimd.record(aimd.batch_size, 0.030)
    assert aimd.batch_size == 1  # lower bound
    for _ in range(200):
        aimd.record(aimd.batch_size, 0.001)
    assert aimd.batch_size == 256  # upper bound


def test_aimd_settles_around_the_latency_target():
    # A model whose batch costs 1 ms + 0.1 ms per query: 20 ms fit 190 queries.
    aimd = AIMDController(target_latency_s=0.020, initial=1, step=4, backoff=0.75, max_size=256)
    sizes = []
    for _ in range(400):
        size = aimd.batch_size
        aimd.record(size, 0.001 + 0.0001 * size)
        sizes.append(size)
    settled = sizes[200:]
    assert max(settled) <= 194  # never more than one step past the largest batch under 20 ms
    assert min(settled) >= int(190 * 0.75) - 4  # backs off by a quarter, not to the floor
    assert aimd.decreases > 0 and aimd.increases > 0


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeEnsemble:
    """Answers query q with q * 10; "bad" is rejected; costs 1 ms + 0.5 ms per query on the fake clock."""

    def __init__(self, clock):
        self.clock = clock
        self.batches = []

    def evaluate(self, queries, arrays):
        self.batches.append(list(queries))
        self.clock.now += 0.001 + 0.0005 * len(queries)
        return [Rejected("{label}: it is bad") if q == "bad" else q * 10 for q in queries]


def run(coroutine):
    return asyncio.run(coroutine)


def make_batcher(clock, **kwargs):
    ensemble = FakeEnsemble(clock)
    settings = dict(max_wait_s=0.05, clock=clock,
                    controller=AIMDController(target_latency_s=0.010, initial=4, step=2, backoff=0.5))
    settings.update(kwargs)
    return ensemble, Batcher(ensemble.evaluate, executor=None, **settings)


def test_concurrent_requests_share_batches_and_each_gets_its_own_answers_in_order():
    clock = FakeClock()
    ensemble, batcher = make_batcher(clock)

    async def main():
        batcher.start()
        requests = [list(range(i * 10, i * 10 + 1 + i % 3)) for i in range(12)]
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return requests, answers

    requests, answers = run(main())
    for request, answer in zip(requests, answers):
        assert answer == [q * 10 for q in request]
    sizes = [len(b) for b in ensemble.batches]
    assert sum(sizes) == sum(len(r) for r in requests)
    assert len(ensemble.batches) < len(requests) and max(sizes) > 1
    assert batcher.stats.batches == len(sizes) and batcher.stats.queries == sum(sizes)


def test_aimd_in_the_batcher_follows_the_fake_latency():
    clock = FakeClock()
    # 1 ms + 0.5 ms per query against a 10 ms target: batches of up to 18 queries stay under it.
    ensemble, batcher = make_batcher(clock, max_wait_s=0,
                                     controller=AIMDController(target_latency_s=0.010, initial=4, step=2,
                                                               backoff=0.5, max_size=64))

    async def main():
        batcher.start()
        for _ in range(30):  # waves of 40 single-query requests: every batch is full
            await asyncio.gather(*(batcher.submit([1]) for _ in range(40)))
        await batcher.stop()

    run(main())
    sizes = [len(b) for b in ensemble.batches]
    assert sizes[:3] == [4, 6, 8]  # additive increase while full batches stay under 10 ms
    assert max(sizes) <= 20  # 20 queries take 11 ms: the target never goes past one step over
    assert batcher.controller.decreases > 0
    assert 9 <= batcher.controller.batch_size <= 20


def test_a_large_request_is_split_over_batches_and_reassembled():
    clock = FakeClock()
    ensemble, batcher = make_batcher(clock, controller=AIMDController(initial=4, step=1, max_size=4))

    async def main():
        batcher.start()
        answer = await batcher.submit(list(range(11)))
        await batcher.stop()
        return answer

    assert run(main()) == [q * 10 for q in range(11)]
    assert [len(b) for b in ensemble.batches] == [4, 4, 3]


def test_a_bad_query_fails_only_its_own_request():
    clock = FakeClock()
    ensemble, batcher = make_batcher(clock, controller=AIMDController(initial=8))

    async def main():
        batcher.start()
        results = await asyncio.gather(batcher.submit([1]), batcher.submit([2, "bad", 3]), batcher.submit([4]),
                                       batcher.submit(["bad"], single=True), return_exceptions=True)
        await batcher.stop()
        return results

    good1, bad, good2, single = run(main())
    assert good1 == [10] and good2 == [40]
    assert isinstance(bad, InvalidInput) and bad.message == "query 1: it is bad"
    assert isinstance(single, InvalidInput) and single.message == "the query: it is bad"
    assert len(ensemble.batches) == 1  # all four shared one batch


def test_without_batching_each_request_is_evaluated_alone():
    clock = FakeClock()
    ensemble, batcher = make_batcher(clock, batching=False)

    async def main():
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([i, i + 1]) for i in range(5)))
        await batcher.stop()
        return answers

    assert run(main()) == [[i * 10, (i + 1) * 10] for i in range(5)]
    assert ensemble.batches == [[i, i + 1] for i in range(5)]
    assert batcher.controller.increases == 0


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    calls = []

    def evaluate(queries, arrays):
        calls.append(queries)
        if len(calls) == 1:
            raise ModelError("member answered nonsense")
        if len(calls) == 2:
            raise RuntimeError("a bug")
        return [q for q in queries]

    batcher = Batcher(evaluate, executor=None, max_wait_s=0)

    async def main():
        batcher.start()
        results = []
        for value in (1, 2, 3):
            try:
                results.append(await batcher.submit([value]))
            except ModelError as e:
                results.append(e.message)
        await batcher.stop()
        return results

    assert run(main()) == ["member answered nonsense", "evaluating the batch failed: RuntimeError: a bug", [3]]


def test_stop_answers_what_is_queued_then_refuses():
    clock = FakeClock()
    ensemble, batcher = make_batcher(clock)

    async def main():
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([i])) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.stop()
        answers = await asyncio.gather(*pending)
        with pytest.raises(Exception, match="shutting down"):
            await batcher.submit([1])
        return answers

    assert run(main()) == [[i * 10] for i in range(5)]


def test_a_lone_client_is_never_delayed_but_concurrent_clients_wait_for_a_fuller_batch():
    batches = []

    def evaluate(queries, arrays):  # runs in the model thread, 20 ms per batch
        batches.append(list(queries))
        time.sleep(0.02)
        return list(queries)

    executor = ThreadPoolExecutor(max_workers=1)
    batcher = Batcher(evaluate, executor, AIMDController(target_latency_s=1.0, initial=8), max_wait_s=0.3)

    async def main():
        batcher.start()
        started = time.perf_counter()
        for i in range(3):  # one request at a time: nothing arrives while a batch computes
            assert await batcher.submit([i]) == [i]
        lone = time.perf_counter() - started
        first = asyncio.ensure_future(batcher.submit([10]))
        await asyncio.sleep(0.005)  # the first batch is computing
        started = time.perf_counter()
        second = asyncio.ensure_future(batcher.submit([11]))  # arrives during the computation
        await first
        third = asyncio.ensure_future(batcher.submit([12]))  # arrives while the batcher waits
        await asyncio.gather(second, third)
        concurrent = time.perf_counter() - started
        await batcher.stop()
        return lone, concurrent

    try:
        lone, concurrent = asyncio.run(main())
    finally:
        executor.shutdown()
    assert lone < 0.25  # three 20 ms batches, no 300 ms waits
    assert batches == [[0], [1], [2], [10], [11, 12]]
    assert concurrent >= 0.25  # the batch after a busy one waited (up to 300 ms) for more queries


def test_a_batch_past_its_deadline_fails_only_the_slow_request_and_the_others_are_answered():
    """One batch holds a slow query (its request's deadline is short) and quick ones: at the
    deadline the batch is abandoned, the model thread replaced (``on_stuck``), the slow request
    gets ModelTimeout and the other requests are evaluated again and answered."""
    from kilele_inference.errors import ModelTimeout
    from kilele_inference.model_thread import ModelThread

    release = threading.Event()

    def evaluate(queries, arrays):
        if "slow" in queries:
            release.wait(10)
        return [f"{q}!" for q in queries]

    replaced = []
    batcher = Batcher(evaluate, executor=ModelThread(), max_wait_s=0.05, call_timeout_s=5.0,
                      controller=AIMDController(initial=8))

    async def on_stuck():
        replaced.append(batcher.executor)
        batcher.executor = ModelThread()

    batcher.on_stuck = on_stuck

    async def main():
        batcher.start()
        batcher._concurrent = True  # wait for a fuller batch, so that all three share one
        slow = asyncio.ensure_future(batcher.submit(["slow"], timeout_s=0.3))
        quick = [asyncio.ensure_future(batcher.submit([q])) for q in ("a", "b")]
        started = time.monotonic()
        results = await asyncio.gather(slow, *quick, return_exceptions=True)
        elapsed = time.monotonic() - started
        await batcher.stop()
        return results, elapsed

    try:
        (slow, a, b), elapsed = run(main())
    finally:
        release.set()
    assert isinstance(slow, ModelTimeout)
    assert (a, b) == (["a!"], ["b!"])
    assert elapsed < 3
    assert len(replaced) == 1 and batcher.stats.abandoned == 1
