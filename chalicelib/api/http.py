"""The ``endpoint`` decorator: routing, authentication, request parsing, error mapping and
the OpenAPI description, written once for every view.

A view receives a :class:`Call` (the caller, the parsed body and query) plus its path
parameters, calls one service method and returns its result.
"""
from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from aws_lambda_powertools import Logger
from chalice import Blueprint, Response
from pydantic import BaseModel, ValidationError

from chalicelib.entities import User
from chalicelib.errors import DomainError, InvalidInput, PayloadTooLarge, http_status
from chalicelib.path_parameters import path_parameter
from chalicelib.wiring import services

logger = Logger(service="kilele-api", child=True)

# Bodies above this are refused before parsing (base64 of the largest direct upload, plus slack).
MAX_BODY_BYTES = 6 * 1024 * 1024
# Accept JSON whatever the client labels it (curl -d sends form-urlencoded by default).
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain"]


@dataclass
class Call:
    user: Optional[User]
    body: Any = None
    query: Any = None
    bearer_token: Optional[str] = None
    source_ip: Optional[str] = None  # API Gateway's requestContext.identity.sourceIp (the TCP peer)
    iam_principal: Optional[str] = None  # the verified SigV4 caller's ARN (IAM API only), else None


@dataclass
class Operation:
    path: str
    method: str
    summary: str
    body: Optional[type[BaseModel]]
    query: Optional[type[BaseModel]]
    public: bool
    status: int
    returns: Any = None  # the view's return annotation (the document's fallback when ``response`` is None)
    media_type: str = "application/json"  # of the 2xx body
    response: Any = None  # the 2xx body's schema: a pydantic model, ``list[Model]`` or a Union (OpenAPI)
    errors: tuple[type[DomainError], ...] = ()  # beyond what every operation of its kind answers (OpenAPI)


@dataclass
class Registry:
    """Every endpoint declared with :func:`endpoint`, for GET /openapi.json."""

    operations: list[Operation] = field(default_factory=list)


REGISTRY = Registry()


def error_response(status: int, code: str, message: str, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(body={"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _source_ip(request: Any) -> Optional[str]:
    # Set by API Gateway from the connection (not from a header a client could forge); the local
    # gateway fills it from the socket's peer address.
    identity = (request.context or {}).get("identity") or {}
    return identity.get("sourceIp") or None


def _iam_principal(request: Any) -> Optional[str]:
    # Set by API Gateway only on methods with IAM authorization, after it verified the request's
    # SigV4 signature (the local gateway verifies it the same way); a client cannot set it.
    identity = (request.context or {}).get("identity") or {}
    return identity.get("userArn") or None


def _bearer_token(headers: Any) -> Optional[str]:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _parse_body(schema: type[BaseModel], raw: bytes) -> BaseModel:
    """The body validated into ``schema``, its JSON parsed once (by pydantic), strictly: the
    OpenAPI document says ``integer`` and ``boolean``, so ``true`` is not 1 nor ``"5"`` 5."""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    if not raw.strip():
        raw = b"{}"  # no body: fine when every field has a default, else "field required"
    try:
        return schema.model_validate_json(raw, strict=True)
    except ValidationError as e:
        invalid_json = next((item for item in e.errors() if item["type"] == "json_invalid"), None)
        if invalid_json is not None:
            raise InvalidInput(f"the request body is not valid JSON: {invalid_json['ctx']['error']}") from e
        raise


def _path_params(path: str, values: dict[str, str]) -> dict[str, str]:
    """Path parameters checked against their schema (chalicelib/schemas.py's PATH_PARAMETERS):
    an empty or blank id is a 400 naming the parameter, never a key DynamoDB refuses."""
    for name, value in values.items():
        rule = path_parameter(name)
        try:
            rule.adapter.validate_python(value)
        except ValidationError:
            raise InvalidInput(f"{name} in the path must be {rule.description}; got {value[:80]!r}") from None
    return values


def _query_values(params: Any) -> dict[str, str]:
    """The query string's values; ``?key=`` reads as not given (an empty id reached DynamoDB
    as an empty key and came back a 500)."""
    return {name: value for name, value in dict(params or {}).items() if value != ""}


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def endpoint(
    blueprint: Blueprint,
    path: str,
    method: str,
    summary: str,
    body: Optional[type[BaseModel]] = None,
    query: Optional[type[BaseModel]] = None,
    public: bool = False,
    status: int = 200,
    media_type: str = "application/json",
    response: Any = None,
    errors: tuple[type[DomainError], ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``view`` at ``method path`` on ``blueprint`` (``media_type``: of its 2xx body;
    ``response``: its schema, chalicelib/schemas_responses*.py, for the OpenAPI document;
    ``errors``: domain errors it raises that only some operations do, chalicelib/openapi.py's
    ``DECLARED_ONLY``, such as a 413 without a request body or the 502 of a model that failed)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        try:
            returns = typing.get_type_hints(view).get("return")
        except (NameError, TypeError):  # an annotation that does not evaluate: the document says "any JSON"
            returns = None
        REGISTRY.operations.append(Operation(path, method, summary, body, query, public, status, returns,
                                             media_type, response, tuple(errors)))

        @blueprint.route(path, methods=[method], content_types=CONTENT_TYPES)
        @functools.wraps(view)
        def handler(**path_params: str) -> Any:
            request = blueprint.current_request
            try:
                call = Call(user=None, bearer_token=_bearer_token(request.headers), source_ip=_source_ip(request),
                            iam_principal=_iam_principal(request))
                if not public:
                    call.user = services().auth.authenticate(call.bearer_token, request.headers.get("x-api-key"),
                                                             call.iam_principal)
                _path_params(path, path_params)
                if body is not None:
                    call.body = _parse_body(body, request.raw_body or b"")
                if query is not None:
                    call.query = query.model_validate(_query_values(request.query_params))
                result = view(call, **path_params)
            except ValidationError as e:
                return error_response(400, InvalidInput.code, _validation_message(e))
            except DomainError as e:
                return error_response(http_status(e), e.code, e.message, headers=e.headers or None)
            except Exception:
                logger.exception("unhandled error", extra={"path": path, "method": method})
                return error_response(500, "internal", "internal error; the service logged it")
            if isinstance(result, Response):
                return result
            return Response(body=result, status_code=status)

        return handler

    return decorate


_CHALICE_CODES = {"UnsupportedMediaType": "unsupported_media_type", "MethodNotAllowedError": "method_not_allowed",
                  "BadRequestError": InvalidInput.code}


def uniform_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Middleware: Chalice's own answers (415 unsupported media type, 405 method not allowed...)
    come as ``{"Code", "Message"}``; give them the API's ``{"error": {"code", "message"}}`` shape."""
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
        code = _CHALICE_CODES.get(body["Code"], str(body["Code"]).lower())
        return error_response(response.status_code, code, str(body["Message"]))
    return response
