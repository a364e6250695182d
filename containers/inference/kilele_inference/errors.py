"""Errors the server answers with: JSON ``{"error": {"code": ..., "message": ...}}`` and a status."""
from __future__ import annotations

from typing import Any


def json_type(value: Any) -> str:
    """How a JSON value is named in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" if len(value) <= 40 else f"the string {value[:40]!r}…"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class ServingError(Exception):
    """An error answered to the client."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInput(ServingError):
    """The request (its JSON, its shape, one of its queries) is wrong: the client must fix it."""

    status = 400
    code = "invalid_input"


class PayloadTooLarge(ServingError):
    status = 413
    code = "payload_too_large"


class NotFound(ServingError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ServingError):
    status = 405
    code = "method_not_allowed"


class NotReady(ServingError):
    """The bundle is still loading, failed to load, or the server is shutting down."""

    status = 503
    code = "not_ready"


class ModelError(ServingError):
    """A member raised in ``predict`` (anything but the kit's ``InvalidQuery``) or answered
    something the server cannot use (wrong count, wrong type): not the client's fault."""

    status = 500
    code = "model_error"


class ModelTimeout(ServingError):
    """The model did not answer within the call's deadline: the call was abandoned and the
    model thread that ran it replaced (only the queries of that call pay)."""

    status = 504
    code = "model_timeout"


class BundleError(Exception):
    """The bundle cannot be loaded (bad manifest, missing file, model that does not import)."""
