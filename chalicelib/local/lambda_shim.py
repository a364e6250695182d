"""Answers the Lambda task states of locally rendered state machines by calling the same
Python handlers Lambda would run (moto executes state machines but not Lambda code)."""
from __future__ import annotations

import threading
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from chalicelib.local.queue_consumer import QueueConsumer, log
from chalicelib.ports import TaskTokens

Invoke = Callable[[str, dict[str, Any]], Any]
#: How long a stop waits for the handlers already running (the stack's stop has 30 s in all).
STOP_GRACE_SECONDS = 5.0


class LambdaShim(QueueConsumer):
    name = "lambda-shim"

    def __init__(self, queue_url: str, sqs: Any, tokens: TaskTokens, invoke: Invoke, threads: int = 4):
        super().__init__(queue_url, sqs)
        self._tokens = tokens
        self._invoke = invoke
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lambda-shim")
        self._threads = threads
        self._busy = 0
        self._running: set[futures.Future] = set()
        self._lock = threading.Lock()

    def capacity(self) -> int:
        with self._lock:
            return self._threads - self._busy

    def handle(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._busy += 1
            future = self._pool.submit(self._run, body)
            self._running.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: futures.Future) -> None:
        with self._lock:
            self._running.discard(future)

    def _run(self, body: dict[str, Any]) -> None:
        token = body["task_token"]
        try:
            try:
                result = self._invoke(body["function"], body["input"])
            except Exception as e:  # noqa: BLE001 - the error name reaches the state's Catch, as with Lambda
                log.info("lambda-shim: %s raised %s: %s", body.get("function"), type(e).__name__, e)
                self._tokens.fail(token, type(e).__name__, str(e))
            else:
                self._tokens.succeed(token, result)
        except Exception:  # noqa: BLE001 - the emulated AWS is going away
            log.exception("lambda-shim: answering %s failed", body.get("function"))
        finally:
            with self._lock:
                self._busy -= 1

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """No more messages; handlers not started are dropped, those running get
        ``grace_seconds`` to answer (a Lambda cut off by the stop: the state machine's execution
        stops with moto, and the next start's recovery ends its job)."""
        super().stop()
        with self._lock:
            running = list(self._running)
        self._pool.shutdown(wait=False, cancel_futures=True)
        futures.wait(running, timeout=grace_seconds)
