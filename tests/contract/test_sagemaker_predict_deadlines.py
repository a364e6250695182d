"""Issue 13, finding 5: predict on AWS. SageMaker's runtime is a stub HTTP server on 127.0.0.1
(tests/contract/test_endpoint_runners.py), called through the clients the composition root
builds: an SLO under a second is enforced, the runtime clients are made once per process and
timeout, and a connection error is an unavailable endpoint (the predict service then answers the
app's default output, tests/unit/services/test_predict_failures.py)."""
from __future__ import annotations

import socket
import time

import pytest

from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.endpoints.sagemaker import runtime_clients, timeout_step
from chalicelib.ports import EndpointTimeout, EndpointUnavailable
from settings_support import make_settings

from .test_endpoint_runners import runner_at, runtime_stub  # noqa: F401 - the stub server fixture


def test_an_slo_under_a_second_is_enforced(runtime_stub):  # noqa: F811
    runner = runner_at(runtime_stub)
    for attempt in range(2):  # the first call also makes the client (seconds on a loaded machine)
        started = time.monotonic()
        with pytest.raises(EndpointTimeout):
            runner.invoke("slow", b'{"queries": [[1]]}', 0.3)  # the stub answers after 3 s
    # The read timeout was rounded up to a whole second before.
    assert time.monotonic() - started < 0.9


def test_runtime_clients_are_made_once_per_process_and_timeout_step():
    settings = make_settings()
    clients = runtime_clients(AwsClients(settings.region, endpoint_url="http://127.0.0.1:9",
                                         access_key_id="testing", secret_access_key="testing"))
    first = clients(0.25)
    assert clients(0.25) is first and clients(0.3) is first  # the same step: the same client, its connections
    assert clients(0.5) is not first
    assert first.meta.config.read_timeout == pytest.approx(0.3)
    assert first.meta.config.max_pool_connections >= 10
    assert [timeout_step(s) for s in (0.01, 0.1, 0.11, 0.999, 25.0)] == pytest.approx([0.1, 0.1, 0.2, 1.0, 25.0])


def test_a_connection_error_is_an_unavailable_endpoint_within_the_slo():
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = runner_at(f"http://127.0.0.1:{port}")
    for attempt in range(2):
        started = time.monotonic()
        with pytest.raises(EndpointUnavailable):
            runner.invoke("kilele-test-iris", b'{"queries": [[1]]}', 0.5)
    assert time.monotonic() - started < 1.5
