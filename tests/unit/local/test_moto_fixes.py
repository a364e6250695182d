"""moto's Step Functions take a task's heartbeat and answer as AWS does, also in the moment
between the token going out and the task's heartbeat being set up (chalicelib/local/moto_fixes.py)."""
from __future__ import annotations

import time

from moto.stepfunctions.parser.asl.eval.callback.callback import (
    CallbackEndpoint,
    CallbackOutcomeSuccess,
    CallbackPoolManager,
)

from chalicelib.local.moto_fixes import install


def _patched_pool() -> tuple[CallbackPoolManager, type]:
    """A pool whose endpoints are of a patched subclass (moto's own class is left as it is)."""

    class Endpoint(CallbackEndpoint):
        pass

    assert install(Endpoint)
    pool = CallbackPoolManager(activity_store={})
    return pool, Endpoint


def test_a_heartbeat_before_the_set_up_is_accepted_and_counts():
    pool, Endpoint = _patched_pool()
    endpoint = pool._pool["token"] = Endpoint("token")  # as CallbackPoolManager.add makes it
    assert pool.heartbeat("token") is True  # unpatched moto: False, and the API answers InvalidToken
    heartbeat = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=30)
    started = time.monotonic()
    assert heartbeat.clear_and_wait() is True
    assert time.monotonic() - started < 5


def test_an_answer_before_the_set_up_ends_the_wait_at_once():
    pool, Endpoint = _patched_pool()
    endpoint = pool._pool["token"] = Endpoint("token")
    assert pool.notify("token", CallbackOutcomeSuccess(callback_id="token", output="{}")) is True
    heartbeat = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=30)
    started = time.monotonic()
    assert heartbeat.clear_and_wait() is True  # unpatched: waits the 30 s out, then HeartbeatTimeout
    assert time.monotonic() - started < 5
    assert endpoint.get_outcome().output == "{}"


def test_after_the_set_up_heartbeats_work_as_before():
    pool, Endpoint = _patched_pool()
    endpoint = pool._pool["token"] = Endpoint("token")
    heartbeat = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=0.2)
    assert heartbeat.clear_and_wait() is False  # nothing came: the heartbeat times out
    assert pool.heartbeat("token") is True
    assert heartbeat.clear_and_wait() is True


def test_install_is_idempotent():
    class Endpoint(CallbackEndpoint):
        pass

    assert install(Endpoint) and install(Endpoint)
    endpoint = Endpoint("token")
    assert endpoint.notify_heartbeat() is True  # patched once: no recursion through a second wrap
