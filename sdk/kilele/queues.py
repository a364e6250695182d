"""Cluster Serving's Python API (seed 003) over Kilele's queue API.

::

    import numpy as np
    from kilele import InputQueue, OutputQueue

    input_api = InputQueue("iris_app", api_key="...")          # a queue is one of your apps
    input_api.enqueue("flower-1", t=np.array([5.1, 3.5, 1.4, 0.2]))
    input_api.enqueue("photo-1", img={"path": "cat.jpg"})       # images go as base64 PNG
    output_api = OutputQueue("iris_app", api_key="...")
    output_api.query("flower-1", timeout=10)                    # the prediction, or None
    output_api.dequeue()                                        # {uri: prediction}, then gone
    input_api.predict(np.array([5.1, 3.5, 1.4, 0.2]))           # synchronous

Pass ``client=`` to share a logged-in :class:`~kilele.Client`, or ``host``/``port``/``base_url``
with an ``api_key`` (or a session ``token``).
"""
from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import quote

from kilele.client import Client
from kilele.errors import KileleError, NotFoundError, ServerError

#: Cluster Serving's default queue ("job") name.
DEFAULT_NAME = "serving_stream"

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class PredictionFailedError(KileleError):
    """The platform could not predict an enqueued item (e.g. its app has no running inference
    job, or the model rejected the input); ``uri`` names the item, ``message`` says why."""

    default_code = "prediction_failed"

    def __init__(self, message: str, uri: Optional[str] = None):
        super().__init__(message)
        self.uri = uri


class EnqueueFailedError(ServerError):
    """503: some items of an :meth:`InputQueue.enqueue_many` were not enqueued; ``failed`` lists
    their uris (send exactly those again), ``enqueued`` counts the others."""

    default_code = "unavailable"

    def __init__(self, message: str, status_code: int, code: Optional[str], failed: list[str], enqueued: int):
        super().__init__(message, status_code=status_code, code=code)
        self.failed = failed
        self.enqueued = enqueued


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _image_png_base64(image: Any) -> str:
    """A PIL image, or a path to an image file, as a base64 PNG string."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        data = path.read_bytes()  # FileNotFoundError before any call
        if data.startswith(_PNG_MAGIC):
            return base64.b64encode(data).decode()
        try:
            from PIL import Image
        except ImportError as e:  # pragma: no cover (pillow is a dependency of the SDK)
            raise ImportError(f"{path} is not a PNG; install pillow to convert it") from e
        with Image.open(io.BytesIO(data)) as opened:
            return _image_png_base64(opened)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _is_pil_image(value: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, Image.Image)


def encode(value: Any) -> Any:
    """One input as JSON: numpy arrays and scalars as lists and numbers, bytes as base64, a PIL
    image, a :class:`pathlib.Path` or ``{"path": ...}`` (Cluster Serving's image form) as a
    base64 PNG; lists, tuples and dicts element by element. Strings stay strings."""
    if _is_pil_image(value) or isinstance(value, os.PathLike):
        return _image_png_base64(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy array or scalar
        return value.tolist()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        if set(value) == {"path"}:
            return _image_png_base64(value["path"])
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def _query(data: Mapping[str, Any]) -> Any:
    """Cluster Serving's ``enqueue(uri, **data)``: one input is the query, several a dict."""
    if not data:
        raise ValueError("give the input as a keyword argument, e.g. enqueue('img-1', t=np.array([...]))")
    if len(data) == 1:
        return encode(next(iter(data.values())))
    return {key: encode(value) for key, value in data.items()}


class _Queue:
    def __init__(
        self,
        name: str = DEFAULT_NAME,
        client: Optional[Client] = None,
        host: str = "127.0.0.1",
        port: int = 8000,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        token: Optional[str] = None,
    ):
        if not name or not isinstance(name, str):
            raise ValueError("name must be the name of one of your apps")
        self.name = name
        self.client = client or Client(admin_host=host, admin_port=port, base_url=base_url, api_key=api_key,
                                       token=token)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.client.base_url!r})"

    @property
    def _path(self) -> str:
        return f"/queues/{_segment(self.name)}"


class InputQueue(_Queue):
    """Sends inputs to the named serving queue (one of your apps): :meth:`enqueue` (async,
    read the result with :class:`OutputQueue`) and :meth:`predict` (sync)."""

    def enqueue(self, uri: str, **data: Any) -> dict[str, Any]:
        """Enqueue one input under ``uri`` (letters, digits and ``._:@+=,~-``, up to 256).
        A single keyword argument is the query itself (``t=np.array([...])``); several make a
        dict query. Raises a :class:`~kilele.KileleError` subclass if it was not enqueued
        (e.g. ``ServerError`` 503 when the queue is full: retry later)."""
        return self._send({uri: _query(data)})

    def enqueue_many(self, items: Mapping[str, Any]) -> dict[str, Any]:
        """Enqueue ``{uri: query}`` in one request (up to 100); values are encoded like
        :meth:`enqueue`'s. Nothing is enqueued when the request is refused, except on
        :class:`EnqueueFailedError`: its ``failed`` uris were not enqueued, the others were."""
        return self._send({uri: encode(query) for uri, query in items.items()})

    def _send(self, items: Mapping[str, Any]) -> dict[str, Any]:
        client = self.client
        body = {"items": [{"uri": str(uri), "data": query} for uri, query in items.items()]}
        response = client._send("POST", f"{client.base_url}{self._path}/items", headers=client._auth_headers(),
                                json=body)
        if response.status_code >= 400:
            error = client._error(response)
            try:
                detail = response.json().get("error")
            except (ValueError, AttributeError):
                detail = None
            if isinstance(detail, dict) and isinstance(detail.get("failed"), list):
                raise EnqueueFailedError(error.message, error.status_code or 503, error.code,
                                         [str(u) for u in detail["failed"]], int(detail.get("enqueued") or 0))
            raise error
        return response.json()

    def predict(self, data: Any) -> Any:
        """The prediction of one input, synchronously (``POST /apps/{name}/predict`` with
        ``{"instances": [data]}``). ``data`` is encoded like :meth:`enqueue`'s inputs."""
        answer = self.client._request("POST", f"/apps/{_segment(self.name)}/predict",
                                      json={"instances": [encode(data)]})
        return answer["predictions"][0]


class OutputQueue(_Queue):
    """Reads the results of the named serving queue."""

    def query(self, uri: str, timeout: float = 0, poll_interval: float = 0.2) -> Any:
        """The prediction for ``uri``; None while there is none (pending, unknown, expired or
        dequeued). With ``timeout`` (seconds) waits that long for it. Raises
        :class:`PredictionFailedError` when the platform could not predict it."""
        deadline = time.monotonic() + max(0.0, timeout)
        delay = max(0.01, poll_interval)
        while True:
            try:
                result = self.client._request("GET", f"{self._path}/results/{_segment(uri)}")
            except NotFoundError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                time.sleep(min(delay, remaining))
                delay = min(delay * 1.5, 2.0)
                continue
            if result.get("status") == "error":
                raise PredictionFailedError(result.get("error") or "the prediction failed", uri=uri)
            return result.get("value")

    def dequeue(self) -> dict[str, Any]:
        """Every current result as ``{uri: prediction}``, removed from the queue (each result is
        returned once). Items whose prediction failed appear as :class:`PredictionFailedError`
        values (not raised, so no other result is lost)."""
        answer = self.client._request("POST", f"{self._path}/dequeue")
        results: dict[str, Any] = dict(answer.get("results") or {})
        for uri, message in (answer.get("errors") or {}).items():
            results[uri] = PredictionFailedError(message, uri=uri)
        return results
