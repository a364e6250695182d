"""API error answers become KileleError subclasses that keep the status, code and message."""
from __future__ import annotations

import pytest

from kilele import Client, KileleError
from kilele.errors import (
    BadRequestError,
    ConflictError,
    ConnectionFailedError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    TooManyRequestsError,
    UnauthorizedError,
    UnprocessableError,
    error_class_for_status,
    error_from_response,
)

CASES = [
    (400, "invalid_input", BadRequestError),
    (401, "unauthenticated", UnauthorizedError),
    (403, "forbidden", ForbiddenError),
    (404, "not_found", NotFoundError),
    (409, "conflict", ConflictError),
    (413, "payload_too_large", PayloadTooLargeError),
    (422, "unprocessable", UnprocessableError),
    (429, "too_many_requests", TooManyRequestsError),
    (500, "internal", ServerError),
    (503, "unavailable", ServerError),
]


@pytest.mark.parametrize("status,code,cls", CASES)
def test_status_maps_to_class(status, code, cls):
    assert error_class_for_status(status) is cls
    assert issubclass(cls, KileleError)


def test_unmapped_4xx_is_base_class():
    assert error_class_for_status(418) is KileleError


@pytest.mark.parametrize("status,code,cls", CASES)
def test_error_answer_raises_class_with_code_and_message(server, status, code, cls):
    server.route("GET", "/models/m-1", status, {"error": {"code": code, "message": f"went wrong {status}"}})
    client = Client(base_url=server.url, api_key="kk_a.b")
    with pytest.raises(cls) as info:
        client.get_model("m-1")
    error = info.value
    assert error.status_code == status
    assert error.code == code
    assert error.message == f"went wrong {status}"
    assert str(error) == f"{status} {code}: went wrong {status}"


def test_api_gateway_style_message_is_kept():
    error = error_from_response(403, {"message": "Missing Authentication Token"})
    assert isinstance(error, ForbiddenError)
    assert error.message == "Missing Authentication Token"
    assert error.code == "forbidden"


def test_non_json_error_body_is_kept_as_text(server):
    server.route("GET", "/", 502, "Bad Gateway from proxy", {"Content-Type": "text/plain"})
    with pytest.raises(ServerError) as info:
        Client(base_url=server.url).service_info()
    assert info.value.status_code == 502
    assert "Bad Gateway from proxy" in info.value.message


def test_unreachable_server_names_the_url(closed_port):
    client = Client("127.0.0.1", closed_port, timeout=5)
    with pytest.raises(ConnectionFailedError) as info:
        client.service_info()
    assert info.value.status_code is None
    assert f"http://127.0.0.1:{closed_port}" in str(info.value)
    assert isinstance(info.value, KileleError)
