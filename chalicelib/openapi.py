"""Builds an OpenAPI 3.1 document from the registered endpoints and their pydantic schemas.

What the document says is what the routes do: request bodies, query and path parameters are the
schemas the endpoint decorator validates with; each operation lists its 2xx body (the
``response`` schema its endpoint declares, chalicelib/schemas_responses*.py) and every error status
the API or the gateway in front of it can answer.
"""
from __future__ import annotations

import re
import typing
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, TypeAdapter, ValidationError

from chalicelib.errors import HTTP_STATUS, DomainError
from chalicelib.path_parameters import path_parameter

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
# Every error an operation can answer: the domain error table's (chalicelib/errors.py), the
# framework's (405, 415), the gateway's (429 throttling, 504 integration timeout) and 500 (a bug,
# but documented).
_FRAMEWORK_STATUSES = {
    405: "Method not allowed on this path",
    415: "Unsupported media type",
    429: "Too many requests (see Retry-After)",
    500: "Internal error",
    503: "What the request needs is not running",
    504: "Timed out",
}


def _error_statuses() -> dict[str, str]:
    statuses = dict(_FRAMEWORK_STATUSES)
    for error, status in HTTP_STATUS.items():
        statuses.setdefault(status, (error.__doc__ or error.__name__).strip().splitlines()[0])
    return {str(status): statuses[status] for status in sorted(statuses)}


_BODY_ONLY = {"413", "415"}
_AUTH_ONLY = {"401", "403"}
#: Statuses of the domain error table only a few operations answer: each lists them with
#: ``endpoint(errors=...)`` (also a 413 of an operation without a body).
DECLARED_ONLY = {"502"}


def _declared(op: Any) -> set[str]:
    statuses = set()
    for error in getattr(op, "errors", ()):
        status = next((HTTP_STATUS[cls] for cls in error.__mro__ if cls in HTTP_STATUS), None)
        if status is None:
            raise ValueError(f"{op.method} {op.path}: {error.__name__} has no HTTP status in chalicelib/errors.py")
        statuses.add(str(status))
    return statuses


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: a query string has no null (absent is how it is left out)."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**rest, **options[0]}
    return {k: v for k, v in schema.items() if k != "default" or v is not None}


def _without_null_defaults(node: Any) -> Any:
    """A response schema without pydantic's ``"default": null`` of fields that are only
    sometimes present: a reader would take null for a value the field can have."""
    if isinstance(node, dict):
        return {k: _without_null_defaults(v) for k, v in node.items() if not (k == "default" and v is None)}
    if isinstance(node, list):
        return [_without_null_defaults(v) for v in node]
    return node


def _response_schema(response: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The schema of a declared response: a model's ``$ref``, or (``list[Model]``, a Union)
    the type's schema with its models in ``components``."""
    if isinstance(response, type) and issubclass(response, BaseModel):
        schema = response.model_json_schema(ref_template="#/components/schemas/{model}")
        name = response.__name__
    else:
        schema = TypeAdapter(response).json_schema(ref_template="#/components/schemas/{model}")
        name = None
    for definition_name, definition in schema.pop("$defs", {}).items():
        components[definition_name] = _without_null_defaults(definition)
    if name is None:
        return _without_null_defaults(schema)
    components[name] = _without_null_defaults(schema)
    return {"$ref": f"#/components/schemas/{name}"}


def _success_body(op: Any, components: dict[str, Any]) -> dict[str, Any]:
    media_type = getattr(op, "media_type", "application/json")
    if media_type != "application/json":
        return {media_type: {"schema": {"type": "string"}}}
    if getattr(op, "response", None) is not None:
        return {media_type: {"schema": _response_schema(op.response, components)}}
    # No declared response (tests/unit/test_openapi.py fails on it): the view's return annotation.
    returns = op.returns
    kinds = set(typing.get_args(returns)) or {returns}
    if list in kinds or typing.get_origin(returns) is list:
        return {media_type: {"schema": {"type": "array"}}}
    if dict in kinds or typing.get_origin(returns) is dict:
        return {media_type: {"schema": {"type": "object"}}}
    return {media_type: {"schema": {}}}


def _body_required(model: type[BaseModel]) -> bool:
    """False when an empty body is accepted (the decorator reads no body as ``{}``)."""
    try:
        model.model_validate({})
        return False
    except (ValidationError, ValueError, DomainError):
        return True


def _responses(op: Any, components: dict[str, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    responses: dict[str, Any] = {str(op.status): {"description": "OK", "content": _success_body(op, components)}}
    declared = _declared(op)
    for code, text in _error_statuses().items():
        if code in _BODY_ONLY and op.body is None and code not in declared:
            continue
        if code in DECLARED_ONLY and code not in declared:
            continue
        if code in _AUTH_ONLY and op.public and op.path != "/tokens":
            continue
        responses[code] = {"description": text, "content": error}
    if "429" in responses:
        responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                       "description": "Seconds to wait"}}
    return responses


def settings_limits(settings: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """What a deployment's settings (``chalicelib.settings.Settings``) add to request fields'
    schemas, by component and property: the services check these with their own status and
    words (413 naming the limit; the password policy's reasons), so the request models do not
    carry them, but the document must state them."""
    return {
        "StartDatasetUploadRequest": {"size_bytes": {"maximum": settings.max_dataset_bytes}},
        "CreateUserRequest": {"password": {"minLength": settings.password_min_length}},
    }


def _apply_limits(components: dict[str, Any], limits: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """Add each ``{component: {property: keywords}}`` (:func:`settings_limits`) to the
    property's schema, or to its non-null alternative when it is optional."""
    for component, properties in limits.items():
        for name, keywords in properties.items():
            schema = components[component]["properties"][name]
            options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
            (options[0] if len(options) == 1 else schema).update(keywords)


def build_openapi(operations: Iterable[Any], title: str, version: str,
                  limits: Mapping[str, Mapping[str, Mapping[str, Any]]] = MappingProxyType({})) -> dict[str, Any]:
    """The document of ``operations``; ``limits`` are the deployment's (:func:`settings_limits`)."""
    components: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        spec: dict[str, Any] = {"summary": op.summary, "responses": _responses(op, components)}
        params = [{"name": n, "in": "path", "required": True, "schema": path_parameter(n).json_schema()}
                  for n in re.findall(r"{(\w+)}", op.path)]
        if op.query is not None:
            _schema_ref(op.query, components)
            properties = components[op.query.__name__]["properties"]
            for name, info in op.query.model_fields.items():
                schema = _without_null(properties[name])
                if not info.is_required():  # the decorator reads ?name= as not given
                    schema = {"anyOf": [schema, {"const": ""}], "description": "empty: not given"}
                params.append({"name": name, "in": "query", "required": info.is_required(), "schema": schema})
        if params:
            spec["parameters"] = params
        if op.body is not None:
            spec["requestBody"] = {"required": _body_required(op.body), "content": {"application/json": {
                "schema": _schema_ref(op.body, components)}}}
        spec["security"] = [] if op.public else [{"bearer": []}, {"apiKey": []}]
        paths.setdefault(op.path, {})[op.method.lower()] = spec
    _apply_limits(components, limits)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
