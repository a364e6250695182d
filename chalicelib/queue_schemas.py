"""Pydantic schemas of the queue API (Cluster Serving's pub/sub inference)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from chalicelib.errors import InvalidInput
from chalicelib.path_parameters import register_path_parameter
from chalicelib.schemas import AppName, Schema

MAX_ITEMS_PER_REQUEST = 100

# A uri names one item's result in a URL path (GET /queues/{name}/results/{uri}), so it holds
# only characters every hop (API Gateway, WSGI servers, Chalice) passes through unchanged.
URI_PATTERN = r"^[A-Za-z0-9._:@+=,~-]+$"
URI_RULE = "letters, digits and . _ : @ + = , ~ - (it becomes a URL path segment)"
Uri = Annotated[str, Field(min_length=1, max_length=256, pattern=URI_PATTERN)]


class QueueItem(Schema):
    uri: Uri = Field(description=f"1..256 {URI_RULE}")
    data: Any = Field(description="The query, as for POST /apps/{app}/predict: numbers, a string, base64 bytes...")


class EnqueueRequest(Schema):
    items: list[QueueItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST, description=(
        "each item with a uri of its own: a uri given twice is a 400 (JSON Schema cannot say "
        "that items differ in one property)"))

    def pairs(self) -> list[tuple[str, Any]]:
        return [(item.uri, item.data) for item in self.items]


register_path_parameter("uri", Uri, f"1..256 {URI_RULE}")
_QUEUE_NAME = TypeAdapter(AppName)
_URI = TypeAdapter(Uri)


def queue_name(value: str) -> str:
    """A queue name from the path: the name of one of the caller's apps."""
    try:
        return _QUEUE_NAME.validate_python(value)
    except ValidationError as e:
        raise InvalidInput(f"queue name {value!r} is not an app name: {e.errors()[0]['msg']}") from e


def queue_uri(value: str) -> str:
    """An item's uri from the path."""
    try:
        return _URI.validate_python(value)
    except ValidationError as e:
        raise InvalidInput(f"uri {value!r} is not valid: 1..256 {URI_RULE}") from e
