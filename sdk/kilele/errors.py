"""Errors raised by the Kilele SDK.

Every error the API answers is JSON ``{"error": {"code": ..., "message": ...}}`` with an HTTP
status; the SDK raises the :class:`KileleError` subclass of that status, keeping the code and the
message. ``str(error)`` reads ``"404 not_found: no model 'abc'"``.
"""
from __future__ import annotations

from typing import Any, Optional


class KileleError(Exception):
    """Base of every error the SDK raises for a failed call."""

    default_code = "error"

    def __init__(self, message: str, status_code: Optional[int] = None, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code or self.default_code

    def __str__(self) -> str:
        prefix = f"{self.status_code} " if self.status_code is not None else ""
        return f"{prefix}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, message={self.message!r})"


class BadRequestError(KileleError):
    """400: the request is malformed or a value is out of range."""

    default_code = "invalid_input"


class UnauthorizedError(KileleError):
    """401: no credentials, or wrong, expired, revoked or banned ones."""

    default_code = "unauthenticated"


class ForbiddenError(KileleError):
    """403: your role does not allow the action."""

    default_code = "forbidden"


class NotFoundError(KileleError):
    """404: no such resource (or it is private to someone else)."""

    default_code = "not_found"


class ConflictError(KileleError):
    """409: the action clashes with the current state (duplicate name, resource in use...)."""

    default_code = "conflict"


class PayloadTooLargeError(KileleError):
    """413: the body or file is larger than the limit."""

    default_code = "payload_too_large"


class UnprocessableError(KileleError):
    """422: well formed, but the content (a dataset, a model file) is not usable."""

    default_code = "unprocessable"


class TooManyRequestsError(KileleError):
    """429: too many attempts (failed logins): wait ``retry_after`` seconds (None if not said)."""

    default_code = "too_many_requests"

    def __init__(self, message: str, status_code: Optional[int] = None, code: Optional[str] = None,
                 *, retry_after: Optional[float] = None):
        super().__init__(message, status_code=status_code, code=code)
        self.retry_after = retry_after


class ServerError(KileleError):
    """5xx: the service failed; it logged the error."""

    default_code = "internal"


class ConnectionFailedError(KileleError):
    """The server could not be reached (or did not answer in time); ``status_code`` is None."""

    default_code = "connection_failed"


class UploadFailedError(KileleError):
    """A presigned upload straight to object storage (S3) was refused; the message says why."""

    default_code = "upload_failed"


class DownloadFailedError(KileleError):
    """A presigned download straight from object storage (S3) was refused (e.g. the URL expired)."""

    default_code = "download_failed"


class StressTestFailedError(KileleError):
    """A stress test ended FAILING, so it has no results or report; ``error`` is the job's
    reason (its logs: ``job.get_logs()``)."""

    default_code = "stress_test_failed"

    def __init__(self, message: str, status_code: Optional[int] = None, code: Optional[str] = None,
                 *, job_id: Optional[str] = None, error: Optional[str] = None):
        super().__init__(message, status_code=status_code, code=code)
        self.job_id = job_id
        self.error = error


class DatasetInvalidError(UnprocessableError):
    """A large dataset's check job refused the file (or failed): the dataset is INVALID and
    ``error`` says why, as a 422 would for a file checked at once. ``dataset`` is its record."""

    default_code = "dataset_invalid"

    def __init__(self, message: str, status_code: Optional[int] = None, code: Optional[str] = None,
                 *, dataset: Optional[dict[str, Any]] = None, error: Optional[str] = None):
        super().__init__(message, status_code=status_code, code=code)
        self.dataset = dataset or {}
        self.error = error


class TrainJobErrored(KileleError):
    """A train job ended ERRORED (no trial completed: the model failed its check or every trial
    failed; or its workers broke down). ``error`` is the job's reason, ``job`` the job as last
    read (with its workers); the failed trials and model checks and their logs:
    ``get_trials_of_train_job`` and ``get_trial_logs``."""

    default_code = "train_job_errored"

    def __init__(self, message: str, status_code: Optional[int] = None, code: Optional[str] = None,
                 *, job: Optional[dict[str, Any]] = None, error: Optional[str] = None):
        super().__init__(message, status_code=status_code, code=code)
        self.job = job or {}
        self.error = error


class WrongModelClassError(KileleError, TypeError):
    """``load_trial_model`` was given another class than the one the trial was trained with;
    the message names the class it needs."""

    default_code = "wrong_model_class"


_BY_STATUS: dict[int, type[KileleError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableError,
    429: TooManyRequestsError,
}


def error_class_for_status(status_code: int) -> type[KileleError]:
    """The :class:`KileleError` subclass for an HTTP status (``KileleError`` for unmapped 4xx)."""
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return ServerError
    return KileleError


def error_from_response(status_code: int, payload: Any, text: str = "", reason: str = "",
                        retry_after: Optional[str] = None) -> KileleError:
    """Build the error for a failed answer.

    ``payload`` is the decoded JSON body, or None. Besides Kilele's own ``{"error": {...}}``
    shape this understands the ``{"message": ...}`` answers of API Gateway (e.g. a missing
    route or a throttled call) and falls back to the start of the raw text. ``retry_after`` is
    the answer's ``Retry-After`` header (seconds), kept on a :class:`TooManyRequestsError`.
    """
    cls = error_class_for_status(status_code)
    code: Optional[str] = None
    message: Optional[str] = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
        elif isinstance(error, str):
            message = error
        if message is None:
            message = payload.get("message") or payload.get("Message")
            code = code or payload.get("code") or payload.get("Code")
    if not message:
        message = (text or "").strip()[:500] or reason or f"HTTP {status_code}"
    if cls is TooManyRequestsError:
        try:
            seconds: Optional[float] = float(retry_after) if retry_after else None
        except ValueError:  # an HTTP date: not sent by this API
            seconds = None
        return TooManyRequestsError(str(message), status_code=status_code, code=str(code) if code else None,
                                    retry_after=seconds)
    return cls(str(message), status_code=status_code, code=str(code) if code else None)
