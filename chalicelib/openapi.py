"""Builds an OpenAPI 3.1 document from the registered endpoints and their pydantic schemas."""
from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}
_ERROR_STATUSES = {"400": "Invalid input", "401": "Not authenticated", "403": "Not allowed",
                   "404": "Not found", "409": "Conflict", "413": "Too large", "422": "Unusable content"}


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi(operations: Iterable[Any], title: str, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        spec: dict[str, Any] = {
            "summary": op.summary,
            "responses": {
                str(op.status): {"description": "OK", "content": {"application/json": {}}},
                **{code: {"description": text, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}}
                   for code, text in _ERROR_STATUSES.items()},
            },
        }
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"{(\w+)}", op.path)]
        if op.query is not None:
            _schema_ref(op.query, components)
            properties = components[op.query.__name__]["properties"]
            for name, info in op.query.model_fields.items():
                params.append({"name": name, "in": "query", "required": info.is_required(),
                               "schema": properties[name]})
        if params:
            spec["parameters"] = params
        if op.body is not None:
            spec["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema_ref(op.body, components)}}}
        spec["security"] = [] if op.public else [{"bearer": []}, {"apiKey": []}]
        paths.setdefault(op.path, {})[op.method.lower()] = spec
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
