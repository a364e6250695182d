"""No 500 from input (issue 9, finding 8): blank ids in paths, JSON nested 10,000 deep, fields
and bodies over DynamoDB's item limit. Requests go through the local stack's own HTTP gateway
(waitress's WSGI interface, Chalice's LocalGateway) in process, against moto in process, since
the blank-id 500 came from how a decoded path reached the routes."""
from __future__ import annotations

import base64
import io
import json
import re
import sys
from typing import Any, Iterator, Optional

import pytest
from moto import mock_aws

from chalicelib import wiring
from chalicelib.local.gateway import ChaliceWsgiApp
from chalicelib.local.provision import provision
from chalicelib.schemas import MAX_DEPENDENCIES, MAX_JSON_FIELD_BYTES, MAX_JSON_FIELD_DEPTH
from chalicelib.services.trial_messages import TRAIN_ARGS_MAX_BYTES
from settings_support import make_settings

SUPERADMIN = ("superadmin@kilele", "kilele")


class WsgiClient:
    """Plain HTTP requests to a WSGI app, the path given as it would be on the wire."""

    def __init__(self, app: ChaliceWsgiApp):
        self.app = app
        self.headers: dict[str, str] = {}

    def call(self, method: str, raw_path: str, body: Optional[bytes | Any] = None) -> tuple[int, Any]:
        from urllib.parse import unquote_to_bytes

        path, _, query = raw_path.partition("?")
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),  # as waitress does
            "QUERY_STRING": query, "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data), "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in self.headers.items()},
        }
        status: list[str] = []
        payload = b"".join(self.app(environ, lambda s, h: status.append(s)))
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload
        return int(status[0].split()[0]), parsed


@pytest.fixture(scope="module")
def bad_input_client() -> Iterator[WsgiClient]:
    """The app behind the local gateway, on moto, logged in as the superadmin (one for the
    module: each test leaves nothing behind, or names what it creates uniquely)."""
    from app import app

    settings = make_settings()
    previous = wiring.install(None)
    with mock_aws():
        provision(settings)
        services = wiring.build(settings)
        wiring.install(services)
        services.users.ensure_superadmin(*SUPERADMIN)
        client = WsgiClient(ChaliceWsgiApp(app))
        status, token = client.call("POST", "/tokens", {"email": SUPERADMIN[0], "password": SUPERADMIN[1]})
        assert status == 200, token
        client.headers = {"Authorization": f"Bearer {token['token']}"}
        yield client
        services.close()
    wiring.install(previous)


def operations() -> list[tuple[str, str, bool]]:
    from app import app  # noqa: F401 - registers the endpoints
    from chalicelib.api.http import REGISTRY

    return [(op.method, op.path, op.body is not None) for op in REGISTRY.operations]


def _error(status: int, body: Any, expected_status: int, *phrases: str) -> str:
    assert status == expected_status, (status, body)
    message = body["error"]["message"]
    for phrase in phrases:
        assert phrase in message, message
    return message


# --- blank and odd ids in paths ---------------------------------------------------------------

@pytest.mark.parametrize("raw_path", [
    "/trials/%09/logs", "/trials/%20", "/trials//logs", "/datasets/%0A", "/models/%20%20/file",
    "/stress-tests/%00", "/projects/%09%09", "/api-keys/%20", "/trials/" + "x" * 3000,
])
def test_blank_or_overlong_ids_in_paths_are_400(bad_input_client, raw_path):
    method = "DELETE" if raw_path.startswith("/api-keys") else "GET"
    status, body = bad_input_client.call(method, raw_path)
    _error(status, body, 400, "in the path must be")


def test_an_encoded_question_mark_stays_in_its_segment(bad_input_client):
    """/apps/%3Fx/metrics was routed to /apps (the decoded '?' started a query string)."""
    status, body = bad_input_client.call("GET", "/apps/%3Fx/metrics")
    _error(status, body, 400, "app in the path must be an app name")


@pytest.mark.parametrize("raw_path", ["/stress-tests/%3Bx", "/stress-tests/a;b", "/stress-tests/%23x"])
def test_a_semicolon_or_hash_stays_in_its_segment(bad_input_client, raw_path):
    """/stress-tests/;x was answered by GET /stress-tests (urlparse takes ';' for parameters)."""
    status, body = bad_input_client.call("GET", raw_path)
    _error(status, body, 404)


def test_an_id_with_inner_spaces_is_a_plain_404(bad_input_client):
    status, body = bad_input_client.call("GET", "/trials/no%20such%20trial")
    _error(status, body, 404)


@pytest.mark.parametrize("raw_path", ["/stress-tests?status=&project_id=", "/datasets?task=", "/inference-jobs?user_id="])
def test_empty_query_values_read_as_not_given(bad_input_client, raw_path):
    """?project_id= reached DynamoDB as an empty key (schemathesis found the 500)."""
    status, body = bad_input_client.call("GET", raw_path)
    assert status == 200, body


# --- deep JSON ----------------------------------------------------------------------------------

DEEP_ARRAY = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_json_nested_10000_deep_is_400_on_every_route(bad_input_client, body):
    for method, path, has_body in operations():
        if (method, path) in {("DELETE", "/tokens/current"), ("POST", "/jobs/stop-all")}:
            continue  # would log the client out / stop the world; they read no body anyway
        status, answer = bad_input_client.call(method, re.sub(r"{\w+}", "x1", path), body)
        assert status < 500, (method, path, status, answer)
        if has_body:
            assert status == 400, (method, path, status, answer)


def test_json_fields_deeper_than_dynamodb_allows_are_400(bad_input_client):
    nested: Any = 1
    for _ in range(MAX_JSON_FIELD_DEPTH + 5):
        nested = [nested]
    status, body = bad_input_client.call("POST", "/apps", {"name": "deep", "input_type": "ints",
                                                           "default_output": nested, "slo_micros": 100_000})
    _error(status, body, 400, "default_output", f"limit of {MAX_JSON_FIELD_DEPTH} levels")


# --- fields over DynamoDB's 400 KB item limit ----------------------------------------------------

def test_a_1mb_default_output_is_400_naming_the_limit(bad_input_client):
    app = {"name": "big", "input_type": "strings", "default_output": "x" * 1_000_000, "slo_micros": 100_000}
    status, body = bad_input_client.call("POST", "/apps", app)
    _error(status, body, 400, "default_output", f"the limit is {MAX_JSON_FIELD_BYTES} bytes")
    status, body = bad_input_client.call("GET", "/apps")
    assert status == 200 and "big" not in [a["name"] for a in body], "nothing was stored"


def test_a_1mb_default_output_in_an_update_is_400(bad_input_client):
    app = {"name": "small", "input_type": "strings", "default_output": "x", "slo_micros": 100_000}
    assert bad_input_client.call("POST", "/apps", app)[0] == 201
    status, body = bad_input_client.call("PATCH", "/apps/small", {"default_output": ["y" * 1000] * 1000})
    _error(status, body, 400, "default_output", f"the limit is {MAX_JSON_FIELD_BYTES} bytes")
    assert bad_input_client.call("GET", "/apps/small")[1]["default_output"] == "x"


def test_20000_dependencies_are_400_naming_the_limit(bad_input_client):
    model = {"name": "m", "task": "TABULAR_CLASSIFICATION", "model_class": "M",
             "model_file_base64": base64.b64encode(b"class M: pass\n").decode(),
             "dependencies": {f"package-{n}": "1.0" for n in range(20_000)}}
    status, body = bad_input_client.call("POST", "/models", model)
    _error(status, body, 400, "dependencies", f"at most {MAX_DEPENDENCIES}")


@pytest.mark.parametrize("path, body, code, limit", [
    # train_args ride in every trial's message: their limit is the workflow's (a 413)
    ("/train-jobs", {"app": "a", "task": "TABULAR_CLASSIFICATION", "train_dataset_id": "d", "val_dataset_id": "d",
                     "train_args": {"blob": "x" * 500_000}}, 413, TRAIN_ARGS_MAX_BYTES),
    ("/stress-tests", {"test_run_config": {"blob": "x" * 500_000}}, 400, MAX_JSON_FIELD_BYTES),
], ids=["train_args", "test_run_config"])
def test_other_stored_json_fields_are_bounded(bad_input_client, path, body, code, limit):
    status, answer = bad_input_client.call("POST", path, body)
    _error(status, answer, code, f"the limit is {limit} bytes")


def test_a_body_over_the_request_limit_is_413(bad_input_client):
    from chalicelib.api.http import MAX_BODY_BYTES

    status, body = bad_input_client.call("POST", "/apps", b"{" + b" " * MAX_BODY_BYTES + b"}")
    _error(status, body, 413, f"the limit is {MAX_BODY_BYTES}")


# --- types mean what the document says -----------------------------------------------------------

@pytest.mark.parametrize("field, value", [("top_n", True), ("slo_micros", "100000"), ("slo_micros", 100000.5)])
def test_no_coercion_of_json_types(bad_input_client, field, value):
    app = {"name": "typed", "input_type": "ints", "default_output": 0, "slo_micros": 100_000, field: value}
    status, body = bad_input_client.call("POST", "/apps", app)
    _error(status, body, 400, field)


def test_an_integral_float_is_an_integer_as_json_schema_says(bad_input_client):
    app = {"name": "whole", "input_type": "ints", "default_output": 0, "slo_micros": 100000.0}
    status, body = bad_input_client.call("POST", "/apps", app)
    assert status == 201 and body["slo_micros"] == 100_000, body
