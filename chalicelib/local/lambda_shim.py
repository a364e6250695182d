"""Answers the Lambda task states of locally rendered state machines by calling the same
Python handlers Lambda would run (moto executes state machines but not Lambda code)."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from chalicelib.local.queue_consumer import QueueConsumer, log
from chalicelib.workflows.handlers import invoke


class LambdaShim(QueueConsumer):
    name = "lambda-shim"

    def __init__(self, queue_url: str, threads: int = 4):
        super().__init__(queue_url)
        self._sfn = boto3.client("stepfunctions")
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lambda-shim")
        self._threads = threads
        self._busy = 0
        self._lock = threading.Lock()

    def capacity(self) -> int:
        with self._lock:
            return self._threads - self._busy

    def handle(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._busy += 1
        self._pool.submit(self._run, body)

    def _run(self, body: dict[str, Any]) -> None:
        token = body["task_token"]
        try:
            result = invoke(body["function"], body["input"])
        except Exception as e:  # the error name reaches the state's Catch, as with Lambda
            log.info("lambda-shim: %s raised %s: %s", body.get("function"), type(e).__name__, e)
            self._sfn.send_task_failure(taskToken=token, error=type(e).__name__, cause=str(e)[:256])
        else:
            self._sfn.send_task_success(taskToken=token, output=json.dumps(result))
        finally:
            with self._lock:
                self._busy -= 1

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
