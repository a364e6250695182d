"""What both endpoint twins say to the inference server and how they read its errors (the
server's contract: containers/inference/README.md)."""
from __future__ import annotations

import json

from chalicelib.ports import EndpointModelError, EndpointRejected, EndpointTimeout, EndpointUnavailable

DEADLINE_HEADER = "X-Kilele-Deadline-Ms"


def deadline_ms(timeout_seconds: float) -> str:
    return str(max(1, int(timeout_seconds * 1000)))


def invocation_headers(timeout_seconds: float) -> dict[str, str]:
    """The headers of a POST /invocations: the deadline, so that the server abandons (and
    replaces the model of) a call nobody waits for any more."""
    return {"Content-Type": "application/json", DEADLINE_HEADER: deadline_ms(timeout_seconds)}


def invocation_error(status: int, body: str) -> Exception:
    """The :class:`~chalicelib.ports.EndpointFailure` of the server's error answer ``status``,
    ``body`` (``{"error": {"code", "message"}}``; anything else is read as an unreachable server)."""
    code, message = None, body
    try:
        error = json.loads(body)["error"]
        code, message = error.get("code"), str(error["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    if 400 <= status < 500:
        return EndpointRejected(status, message)
    if code == "model_error":
        return EndpointModelError(message)
    if code == "model_timeout" or status == 504:
        return EndpointTimeout(message)
    return EndpointUnavailable(f"the endpoint answered HTTP {status}")
