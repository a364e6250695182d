"""Issue 13, finding 5 on fakes: when the endpoint cannot be reached, predict answers the app's
default output marked as default (or a 503 without one), even if checking the endpoint then
fails too (a throttled or unreachable DescribeEndpoint), never an unexpected error (a 500)."""
from __future__ import annotations

import pytest

from chalicelib.entities import UserType
from chalicelib.errors import Unavailable
from chalicelib.ports import EndpointUnavailable

from .test_predict_path import QUERY, serve


class Throttled(Exception):
    """What botocore raises for a throttled DescribeEndpoint (ThrottlingException)."""


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")


def _describe_fails(h) -> None:
    def state(name):
        raise Throttled("ThrottlingException: Rate exceeded")

    h.fakes.endpoints.state = state


def test_a_connection_error_then_a_throttled_describe_answers_the_default_output(h, dev):
    serve(h, dev)
    h.services.apps.register_application(dev, "app", None, "fallback", 500_000)
    h.fakes.endpoints.failure = EndpointUnavailable("the endpoint is unreachable: Could not connect")
    _describe_fails(h)
    answer = h.services.predict.predict_answer(dev, "app", QUERY)
    assert answer.body["default"] is True and answer.body["prediction"] == "fallback", answer.body
    assert answer.headers == {"X-Kilele-Default": "true"}


def test_without_a_default_output_it_is_a_503(h, dev):
    serve(h, dev)
    h.fakes.endpoints.failure = EndpointUnavailable("the endpoint is unreachable: Could not connect")
    _describe_fails(h)
    with pytest.raises(Unavailable, match="unreachable"):
        h.services.predict.predict(dev, "app", QUERY)
