"""No silent fallbacks in the inference server: a model that raises is a model error (not the
caller's), and one slow query never blocks the others (a per-call deadline, the call abandoned
and the model thread replaced)."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from inference_harness import ServerThread, custom_member, write_bundle
from kilele_inference import ServerConfig

# Query [0]: answers at once; [1]: sleeps 30 s (a hung predict); [2]: raises ValueError (a
# model bug); [3]: raises the kit's InvalidQuery (the caller's mistake); [4]: answers a label;
# [5]: takes 0.3 s (late for a tight SLO, not hung).
MOODY_MODEL = '''
import time

from kilele.model import BaseModel, InvalidQuery


class Moody(BaseModel):
    @staticmethod
    def get_knob_config():
        return {}

    def train(self, dataset_path, **train_args):
        pass

    def evaluate(self, dataset_path):
        return 1.0

    def predict(self, queries):
        kinds = [q[0] for q in queries]
        if 1 in kinds:
            time.sleep(30)
        if 5 in kinds:
            time.sleep(0.3)
        if 2 in kinds:
            raise ValueError("the model broke")
        if 3 in kinds:
            raise InvalidQuery("queries must be [0], [1], [2], [3] or [4]")
        return ["cat" if k == 4 else [0.25, 0.75] for k in kinds]

    def dump_parameters(self):
        return {"ok": True}

    def load_parameters(self, params):
        pass
'''


@pytest.fixture(scope="module")
def moody_bundle(tmp_path_factory):
    directory = tmp_path_factory.mktemp("moody")
    member = custom_member(directory / "src", MOODY_MODEL, "Moody", {})
    return write_bundle(directory / "bundle", "TABULAR_CLASSIFICATION", [member])


def error_of(response, status, code):
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    return response.json()["error"]["message"]


def test_predict_answers_what_the_model_returned(moody_bundle):
    with ServerThread(ServerConfig(bundle=str(moody_bundle))) as server:
        server.wait_ready()
        answer = httpx.post(server.url + "/invocations", json={"queries": [[0], [4]]}, timeout=10).json()
    assert answer["predictions"] == [[0.25, 0.75], "cat"]  # a list stays a list, a label a label


def test_a_model_that_raises_is_a_model_error_unless_it_declared_the_query_invalid(moody_bundle):
    with ServerThread(ServerConfig(bundle=str(moody_bundle))) as server:
        server.wait_ready()
        broke = httpx.post(server.url + "/invocations", json={"queries": [[0], [2]]}, timeout=10)
        invalid = httpx.post(server.url + "/invocations", json={"query": [3]}, timeout=10)
    message = error_of(broke, 500, "model_error")
    assert message == "query 1: moody (Moody, trial trial-0-moody) failed on it: ValueError: the model broke"
    assert "rejected it: InvalidQuery: queries must be" in error_of(invalid, 400, "invalid_input")


def test_one_slow_query_does_not_block_the_others(moody_bundle):
    """A hung predict costs its own request only: past its deadline the call is abandoned, the
    model is loaded again in a new thread and the other requests are answered."""

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            slow = asyncio.create_task(client.post("/invocations", json={"query": [1]},
                                                   headers={"X-Kilele-Deadline-Ms": "500"}))
            await asyncio.sleep(0.1)  # the slow query is computing
            started = time.monotonic()
            fast = await asyncio.gather(*(client.post("/invocations", json={"query": [0]}) for _ in range(5)))
            fast_seconds = time.monotonic() - started
            return await slow, fast, fast_seconds, (await client.get("/metrics")).json()

    with ServerThread(ServerConfig(bundle=str(moody_bundle), call_timeout_ms=10_000)) as server:
        server.wait_ready()
        slow, fast, fast_seconds, metrics = asyncio.run(scenario(server.url))
        after = httpx.post(server.url + "/invocations", json={"query": [0]}, timeout=5)
    assert "did not answer within the deadline" in error_of(slow, 504, "model_timeout")
    assert [r.status_code for r in fast] == [200] * 5
    assert all(r.json()["prediction"] == [0.25, 0.75] for r in fast)
    assert fast_seconds < 3, fast_seconds  # not the 30 s the slow query sleeps
    assert metrics["abandoned_calls"] == 1 and metrics["model_thread_replacements"] == 1
    assert metrics["stuck_calls"] == 1  # the abandoned call is still sleeping, in its own thread
    assert after.status_code == 200


def test_the_server_call_timeout_applies_without_a_deadline_header(moody_bundle):
    with ServerThread(ServerConfig(bundle=str(moody_bundle), call_timeout_ms=300, max_stuck_calls=1)) as server:
        server.wait_ready()
        started = time.monotonic()
        slow = httpx.post(server.url + "/invocations", json={"query": [1]}, timeout=20)
        waited = time.monotonic() - started
        ping = httpx.get(server.url + "/ping")
    error_of(slow, 504, "model_timeout")
    assert waited < 5
    # One stuck call is this server's limit: /ping fails so the platform replaces the server.
    assert ping.status_code == 503 and "abandoned model calls are still running" in ping.json()["message"]


def test_a_bad_deadline_header_is_the_callers_error(moody_bundle):
    with ServerThread(ServerConfig(bundle=str(moody_bundle))) as server:
        server.wait_ready()
        response = httpx.post(server.url + "/invocations", json={"query": [0]},
                              headers={"X-Kilele-Deadline-Ms": "soon"}, timeout=5)
    assert "X-Kilele-Deadline-Ms" in error_of(response, 400, "invalid_input")


def test_a_merely_late_call_is_not_abandoned_before_the_floor(moody_bundle):
    """A 50 ms budget and a 0.3 s batch: the caller has had its default already; reloading the
    models for a late batch would cost more than finishing it (--min-call-timeout-ms, 1 s)."""
    with ServerThread(ServerConfig(bundle=str(moody_bundle))) as server:
        server.wait_ready()
        late = httpx.post(server.url + "/invocations", json={"query": [5]},
                          headers={"X-Kilele-Deadline-Ms": "50"}, timeout=10)
        metrics = httpx.get(server.url + "/metrics").json()
    assert late.status_code == 200 and late.json()["prediction"] == [0.25, 0.75]
    assert metrics["abandoned_calls"] == 0 and metrics["model_thread_replacements"] == 0


def test_sagemakers_custom_attributes_carry_the_deadline(moody_bundle):
    with ServerThread(ServerConfig(bundle=str(moody_bundle), min_call_timeout_ms=100)) as server:
        server.wait_ready()
        started = time.monotonic()
        slow = httpx.post(server.url + "/invocations", json={"query": [1]},
                          headers={"X-Amzn-SageMaker-Custom-Attributes": "trace=1, deadline_ms=300"}, timeout=20)
        waited = time.monotonic() - started
    error_of(slow, 504, "model_timeout")
    assert waited < 5


ONCE_MODEL = '''
import os
import time

from kilele.model import BaseModel


class Once(BaseModel):
    """Loads once; a second load (the reload after an abandoned call) fails."""

    @staticmethod
    def get_knob_config():
        return {}

    def train(self, dataset_path, **train_args):
        pass

    def evaluate(self, dataset_path):
        return 1.0

    def predict(self, queries):
        time.sleep(30)
        return [[1.0] for _ in queries]

    def dump_parameters(self):
        return {"ok": True}

    def load_parameters(self, params):
        marker = os.environ["ONCE_MARKER"]
        if os.path.exists(marker):
            raise RuntimeError("the model's files are gone")
        open(marker, "w").close()
'''


def test_a_reload_that_fails_makes_the_server_not_ready(tmp_path, monkeypatch):
    monkeypatch.setenv("ONCE_MARKER", str(tmp_path / "loaded"))
    member = custom_member(tmp_path / "src", ONCE_MODEL, "Once", {})
    bundle = write_bundle(tmp_path / "bundle", "TABULAR_CLASSIFICATION", [member])
    with ServerThread(ServerConfig(bundle=str(bundle), min_call_timeout_ms=100)) as server:
        server.wait_ready()
        slow = httpx.post(server.url + "/invocations", json={"query": [1]},
                          headers={"X-Kilele-Deadline-Ms": "200"}, timeout=20)
        ping = httpx.get(server.url + "/ping")
    error_of(slow, 504, "model_timeout")
    assert ping.status_code == 503 and "files are gone" in ping.json()["message"]
