"""Domain errors and the one table that maps them to HTTP statuses.

Services and adapters raise these; only the API layer turns them into responses, through
:data:`HTTP_STATUS`. Each error carries a stable machine-readable ``code`` and a message
written for the person who made the request.
"""
from __future__ import annotations


class DomainError(Exception):
    """Base of every error a user can be shown."""

    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body (none by default)."""
        return {}


class InvalidInput(DomainError):
    """The request is malformed or its values are out of range."""

    code = "invalid_input"


class Unauthenticated(DomainError):
    """No credentials, or credentials that are wrong, expired, revoked or banned."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """The caller is known but its role does not allow the action."""

    code = "forbidden"


class NotFound(DomainError):
    """The resource does not exist, or is private to someone else."""

    code = "not_found"


class Conflict(DomainError):
    """The action clashes with the current state (duplicate name, resource in use...)."""

    code = "conflict"


class PayloadTooLarge(DomainError):
    """The uploaded body or file is larger than the limit."""

    code = "payload_too_large"


class TooManyRequests(DomainError):
    """Too many attempts (failed logins): refused, unchecked, until ``retry_after`` seconds pass."""

    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unprocessable(DomainError):
    """The request is well formed but its content (a dataset, a model file) is not usable."""

    code = "unprocessable"


class FormatError(Unprocessable):
    """A file that does not fit its format. ``message`` quotes the file to help its owner;
    ``blind`` says where without quoting it, for files the platform downloaded (a URL's answer
    is never echoed back: it may come from a server the caller could not read otherwise)."""

    def __init__(self, message: str, blind: str):
        super().__init__(message)
        self.blind = blind


class Unavailable(DomainError):
    """What the request needs is not running (an endpoint down, a queue full)."""

    code = "unavailable"


class ModelFailed(DomainError):
    """The model raised in ``predict`` or answered something unusable: not the caller's fault."""

    code = "model_error"


class UpstreamTimeout(DomainError):
    """The model did not answer in time and the app has no default output."""

    code = "timeout"


HTTP_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    Unprocessable: 422,
    TooManyRequests: 429,
    ModelFailed: 502,
    Unavailable: 503,
    UpstreamTimeout: 504,
}


def http_status(error: DomainError) -> int:
    """The HTTP status of a domain error (its nearest mapped class; 400 if none is mapped)."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
