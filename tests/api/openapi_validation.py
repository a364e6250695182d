"""Answers checked against the OpenAPI document (issue 9): the status must be one the operation
lists, and the body must fit that status's schema (JSON Schema 2020-12, formats checked).

Used by test_response_schemas.py on the main flows. As a pytest plugin it checks every answer
of the API tests: ``pytest tests/api -p openapi_validation`` (a wider net than the main flows,
at about the suite's own cost).
"""
from __future__ import annotations

import functools
import re
from typing import Any, Optional

import jsonschema
import pytest

from chalicelib import SERVICE_NAME, __version__


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The document as GET /openapi.json builds it (the settings' limits do not change shapes)."""
    import app  # noqa: F401 - registers every endpoint
    from chalicelib.api.http import REGISTRY
    from chalicelib.openapi import build_openapi

    return build_openapi(REGISTRY.operations, SERVICE_NAME, __version__)


@functools.lru_cache(maxsize=1)
def _templates() -> list[tuple[re.Pattern[str], str, str]]:
    """(regex, template, method): literal segments before parameters, so /datasets/uploads is
    not taken for /datasets/{dataset_id}."""
    found = []
    for template, operations in document()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)) + "$")
        for method in operations:
            found.append((template.count("{"), pattern, template, method))
    return [(pattern, template, method) for _, pattern, template, method in sorted(found, key=lambda f: f[0])]


def operation_of(method: str, path: str) -> Optional[str]:
    """The template of the operation ``method path`` is routed to (None: no such operation)."""
    path = path.split("?", 1)[0]
    for pattern, template, verb in _templates():
        if verb == method.lower() and pattern.match(path):
            return template
    return None


class Mismatch(AssertionError):
    """An answer the document does not describe."""


def check(method: str, path: str, status: int, body: Any, media_type: str = "application/json") -> None:
    """Raise :class:`Mismatch` unless ``status`` and ``body`` are what the document says
    ``method path`` answers."""
    template = operation_of(method, path)
    if template is None:
        raise Mismatch(f"{method} {path}: no such operation in the document")
    responses = document()["paths"][template][method.lower()]["responses"]
    if str(status) not in responses:
        raise Mismatch(f"{method} {template}: status {status} is not documented (documented: {sorted(responses)})")
    content = responses[str(status)]["content"]
    if media_type not in content:
        raise Mismatch(f"{method} {template} {status}: media type {media_type} is not documented ({sorted(content)})")
    errors = sorted(_validator(template, method.lower(), str(status), media_type).iter_errors(body),
                    key=lambda e: list(e.absolute_path))
    if errors:
        where = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message[:300]}" for e in errors[:5])
        raise Mismatch(f"{method} {template} {status}: the body does not fit the document: {where}")


@functools.lru_cache(maxsize=None)
def _validator(template: str, method: str, status: str, media_type: str) -> jsonschema.Draft202012Validator:
    content = document()["paths"][template][method]["responses"][status]["content"]
    schema = {**content[media_type]["schema"], "components": document()["components"]}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def check_response(method: str, path: str, response: Any) -> None:
    """:func:`check` of a Chalice test client's response read by api_support.Api (``.data``)."""
    headers = {name.lower(): value for name, value in (response.headers or {}).items()}
    media_type = (headers.get("content-type") or "application/json").split(";")[0].strip()
    body = response.data
    if media_type != "application/json" and isinstance(body, bytes):  # a file: its text is the body
        body = body.decode("utf-8")
    check(method, path, response.status_code, body, media_type)


@pytest.fixture(autouse=True)
def _every_answer_fits_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugin mode: every answer an API test gets is checked (a mismatch fails the test)."""
    from api_support import Api

    call = Api.call

    def checked(self: Api, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        response = call(self, method, path, *args, **kwargs)
        if operation_of(method, path) is not None:  # a made-up path is the gateway's 404, not an operation's
            check_response(method, path, response)
        return response

    monkeypatch.setattr(Api, "call", checked)
