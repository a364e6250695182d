"""An in-memory :class:`chalicelib.ports.EndpointRunner` for tests that need endpoints which answer
at once (the API tests, the serving-queue contract suite).

It meets the same contract suite as the SageMaker and local runners
(tests/contract/test_endpoint_runners.py): deploy makes an endpoint InService, an unknown or
deleted one is Deleted and invoking it raises EndpointUnavailable, a body the inference server
would refuse (not JSON, ``queries`` not a list) raises EndpointRejected(400), and invoke answers
``{"predictions": [...], "batch_size": n}``. On top of that a test can script it: ``answer``
computes the predictions, ``failure`` makes invoke raise, ``state_override`` fixes the state.

Importable from every test folder: tests/ is on ``sys.path`` (its conftest.py is the rootdir's).
"""
from __future__ import annotations

import json
import threading
from typing import Callable, Optional

from chalicelib.ports import EndpointRejected, EndpointState, EndpointUnavailable


class FakeEndpoints:
    """Answers {"queries": [...]} with ``answer(queries)``; ``failure`` makes invoke raise."""

    def __init__(self) -> None:
        self.deployed: dict[str, str] = {}
        self.invocations: list[tuple[str, list]] = []
        self.answer: Callable[[list], list] = lambda queries: [{"0": 0.25, "1": 0.75} for _ in queries]
        self.failure: Optional[Exception] = None
        self.state_override: Optional[EndpointState] = None
        self._lock = threading.Lock()  # the queue consumer predicts from several threads

    def deploy(self, name: str, bundle_key: str, gpu: bool = False, image: Optional[str] = None) -> None:
        self.deployed[name] = bundle_key

    def state(self, name: str) -> EndpointState:
        if self.state_override:
            return self.state_override
        return EndpointState("InService" if name in self.deployed else "Deleted")

    def invoke(self, name: str, body: bytes, timeout_seconds: float) -> bytes:
        if name not in self.deployed:
            raise EndpointUnavailable(f"endpoint {name} is not running")
        # What the inference server refuses with a 400 (kilele_inference.app.parse_payload).
        try:
            queries = json.loads(body)["queries"]
        except (ValueError, KeyError, TypeError) as e:
            raise EndpointRejected(400, f'send JSON {{"queries": [...]}} ({type(e).__name__}: {e})') from e
        if not isinstance(queries, list):
            raise EndpointRejected(400, "'queries' must be a list of queries")
        with self._lock:
            self.invocations.append((name, queries))
        if self.failure:
            raise self.failure
        return json.dumps({"predictions": self.answer(queries), "batch_size": len(queries)}).encode()

    def names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.deployed if n.startswith(prefix))

    def delete(self, name: str) -> None:
        self.deployed.pop(name, None)
