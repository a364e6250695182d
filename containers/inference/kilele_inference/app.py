"""The ASGI application: ``GET /ping``, ``POST /invocations``, ``GET /metrics``, ``GET /``.

Plain ASGI (no framework): four fixed routes, a body read in chunks with a size limit, and JSON
in and out with orjson. The bundle loads in the model thread after the lifespan startup, so the
server answers ``/ping`` with 503 while it loads and 200 once it can serve.

The app is given its :class:`ServerConfig`; it knows nothing of the command line, the environment
or how many processes serve it (:mod:`kilele_inference.server` builds and runs it).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from typing import Any, Awaitable, Callable, Optional

import orjson

from kilele_inference.batching import AIMDController, Batcher
from kilele_inference.settings import ServerConfig
from kilele_inference.ensemble import Ensemble, load_ensemble
from kilele_inference.errors import (
    BundleError,
    InvalidInput,
    MethodNotAllowed,
    ModelError,
    NotFound,
    NotReady,
    PayloadTooLarge,
    ServingError,
    json_type,
)
from kilele_inference.metrics import Metrics
from kilele_inference.model_thread import ModelThread

logger = logging.getLogger("kilele_inference")

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_PAYLOAD_KEYS = ("queries", "instances", "query")
DEADLINE_HEADER = b"x-kilele-deadline-ms"  # how long the caller waits for this request, in ms
# SageMaker passes the caller's CustomAttributes on as this header: "deadline_ms=<ms>" there too.
CUSTOM_ATTRIBUTES_HEADER = b"x-amzn-sagemaker-custom-attributes"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def parse_payload(body: bytes) -> tuple[list[Any], bool]:
    """The queries of an /invocations body and whether it was a single ``{"query": q}``."""
    if not body.strip():
        raise InvalidInput('the body is empty; send JSON {"queries": [...]}, {"instances": [...]} or {"query": ...}')
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the body is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f'the body is {json_type(payload)}; send a JSON object: {{"queries": [...]}}, '
                           f'{{"instances": [...]}} or {{"query": ...}}')
    present = [key for key in _PAYLOAD_KEYS if key in payload]
    if not present:
        keys = ", ".join(repr(k) for k in list(payload)[:5]) or "none"
        raise InvalidInput(f"the body has no 'queries', 'instances' or 'query' (its keys: {keys})")
    if len(present) > 1:
        raise InvalidInput(f"the body has both {present[0]!r} and {present[1]!r}; send only one of them")
    key = present[0]
    if key == "query":
        return [payload["query"]], True
    queries = payload[key]
    if not isinstance(queries, list):
        raise InvalidInput(f"{key!r} must be a list of queries, got {json_type(queries)}")
    return queries, False


class InferenceApp:
    """The inference server for one bundle (one per worker process)."""

    def __init__(self, config: ServerConfig, on_fatal: Optional[Callable[[BaseException], None]] = None,
                 loader: Optional[Callable[[ServerConfig], Ensemble]] = None, load_in_background: bool = True):
        self.config = config
        self.on_fatal = on_fatal
        self.load_in_background = load_in_background
        self.loader = loader or (lambda c: load_ensemble(c.bundle, use_onnx=c.use_onnx, onnx_threads=c.onnx_threads,
                                                         providers=c.providers))
        self.metrics = Metrics(config.latency_window)
        self.controller = AIMDController(
            target_latency_s=config.target_latency_ms / 1000.0, initial=config.initial_batch_size,
            step=config.batch_step, backoff=config.batch_backoff, max_size=config.max_batch_size,
        )
        self.ensemble: Optional[Ensemble] = None
        self.batcher: Optional[Batcher] = None
        self.load_error: Optional[BaseException] = None
        self.load_seconds: Optional[float] = None
        self.executor: Optional[ModelThread] = None
        self.abandoned: list[ModelThread] = []  # model threads left with a call past its deadline
        self.replacements = 0
        self._load_task: Optional[asyncio.Task] = None
        self._stopping = False

    @property
    def ready(self) -> bool:
        return self.batcher is not None and not self._stopping and self.load_error is None

    @property
    def stuck_calls(self) -> int:
        """Abandoned model calls that have not returned yet."""
        return sum(1 for thread in self.abandoned if thread.alive)

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        # websockets are not served: returning without accepting makes the server refuse them

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Loads the bundle in the model thread: in the background (the server answers /ping 503
        meanwhile), or before the server accepts connections (``--workers N``: a worker that is
        accepting is ready, so no request meets a worker still loading)."""
        self.executor = ModelThread()
        if self.load_in_background:
            self._load_task = asyncio.get_running_loop().create_task(self._load(), name="kilele-load")
            return
        await self._load()
        if self.load_error is not None:
            raise RuntimeError(f"the bundle could not be loaded: {self.load_error}")

    async def _load(self) -> None:
        started = time.perf_counter()
        logger.info("loading bundle %s (pid %d)", self.config.bundle, os.getpid())
        try:
            ensemble = await asyncio.get_running_loop().run_in_executor(self.executor, self.loader, self.config)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - anything a model file does while loading is fatal
            self.load_error = e
            logger.error("the bundle could not be loaded: %s", e, exc_info=not isinstance(e, BundleError))
            if self.on_fatal is not None:
                self.on_fatal(e)
            return
        self.ensemble = ensemble
        # The loaded models are long-lived: move them out of the collector's generations, or
        # each full collection walks them again (40-60 ms pauses every ~0.5 s under load,
        # measured by bench/serving.py's p99; with the freeze, 0.4 ms).
        gc.collect()
        gc.freeze()
        batcher = Batcher(ensemble.evaluate, self.executor, self.controller,
                          max_wait_s=self.config.max_wait_ms / 1000.0, batching=self.config.batching,
                          call_timeout_s=self.config.call_timeout_ms / 1000.0, on_stuck=self._replace_model_thread,
                          min_call_timeout_s=self.config.min_call_timeout_ms / 1000.0)
        batcher.start()
        self.batcher = batcher
        self.load_seconds = time.perf_counter() - started
        mode = (f"adaptive batching (AIMD, target latency {self.config.target_latency_ms:g} ms, "
                f"max wait {self.config.max_wait_ms:g} ms, batch size 1..{self.config.max_batch_size})"
                if self.config.batching else "no batching (each request alone)")
        logger.info("ready in %.2f s: %s", self.load_seconds, mode)

    async def _replace_model_thread(self) -> None:
        """After a call was abandoned: a new model thread with the bundle loaded again (the stuck
        call keeps the old thread and the old model objects; a model need not be thread-safe)."""
        old, self.abandoned = self.executor, [t for t in self.abandoned if t.alive]
        if old is not None:
            old.abandon()
            self.abandoned.append(old)
        if self._stopping:
            raise NotReady("the server is shutting down")
        self.executor = ModelThread()
        started = time.perf_counter()
        try:
            ensemble = await asyncio.get_running_loop().run_in_executor(self.executor, self.loader, self.config)
        except Exception as e:  # the bundle loaded once and not now: nothing safe to serve with
            self.load_error = e
            logger.error("reloading the bundle after an abandoned call failed: %s", e)
            if self.on_fatal is not None:
                self.on_fatal(e)
            raise
        self.ensemble = ensemble
        self.batcher.evaluate, self.batcher.executor = ensemble.evaluate, self.executor
        self.replacements += 1
        logger.warning("model thread replaced (bundle reloaded in %.2f s); %d abandoned call(s) still running",
                       time.perf_counter() - started, self.stuck_calls)

    async def shutdown(self) -> None:
        """Lifespan shutdown (the server has drained its connections): answers what is still
        queued, then stops the model thread."""
        self._stopping = True
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
            try:
                await self._load_task
            except (asyncio.CancelledError, Exception):
                pass
        if self.batcher is not None:
            await self.batcher.stop()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        logger.info("stopped")

    # -- HTTP ------------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        try:
            if path == "/invocations":
                if method != "POST":
                    raise MethodNotAllowed("use POST /invocations")
                await self._invocations(scope, receive, send)
            elif path == "/ping":
                if method not in ("GET", "HEAD"):
                    raise MethodNotAllowed("use GET /ping")
                await self._ping(send, head=method == "HEAD")
            elif path == "/metrics":
                if method != "GET":
                    raise MethodNotAllowed("use GET /metrics")
                await _respond(send, 200, self.metrics_snapshot())
            elif path == "/":
                if method != "GET":
                    raise MethodNotAllowed("use GET /")
                await _respond(send, 200, self.info())
            else:
                raise NotFound(f"no route {path}; the server answers GET /ping, POST /invocations, GET /metrics")
        except ServingError as e:
            await _respond(send, e.status, e.body())

    async def _ping(self, send: Send, head: bool = False) -> None:
        if self.ready and self.stuck_calls >= self.config.max_stuck_calls:
            message = (f"{self.stuck_calls} abandoned model calls are still running (the limit is "
                       f"{self.config.max_stuck_calls}): replace this server")
            await _respond(send, 503, {"status": "failed", "message": message}, head=head)
        elif self.ready:
            await _respond(send, 200, {"status": "ok"}, head=head)
        elif self.load_error is not None:
            await _respond(send, 503, {"status": "failed", "message": str(self.load_error)}, head=head)
        else:
            await _respond(send, 503, {"status": "stopping" if self._stopping else "loading"}, head=head)

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        self.metrics.in_flight += 1
        n = 0
        try:
            if not self.ready:
                if self.load_error is not None:
                    raise NotReady(f"the bundle failed to load: {self.load_error}")
                raise NotReady("the server is shutting down" if self._stopping else "the bundle is still loading")
            body = await self._read_body(scope, receive)
            if body is None:  # the client went away
                return
            queries, single = parse_payload(body)
            timeout_s = _deadline_seconds(scope)
            n = len(queries)
            ensemble = self.ensemble
            if ensemble.needs_arrays:
                arrays = [ensemble.prepare(q, "the query" if single else f"query {i}") for i, q in enumerate(queries)]
            else:
                arrays = None
            predictions, batch_size = await self.batcher.submit_sized(queries, arrays, single, timeout_s)
            answer = ({"prediction": predictions[0]} if single else {"predictions": predictions})
            answer["batch_size"] = batch_size
            try:
                content = orjson.dumps(answer, option=_JSON_OPTIONS)
            except TypeError as e:
                raise ModelError(f"the model's predictions are not JSON-serializable: {e}") from None
            await _send(send, 200, content)
            self.metrics.observe(time.perf_counter() - started, n)
        except ServingError as e:
            self.metrics.observe(time.perf_counter() - started, n, e.code)
            if isinstance(e, ModelError):
                logger.error("model error: %s", e.message)
            await _respond(send, e.status, e.body())
        except Exception as e:
            logger.exception("unexpected error in /invocations")
            self.metrics.observe(time.perf_counter() - started, n, "internal_error")
            await _respond(send, 500, {"error": {"code": "internal_error", "message": f"{type(e).__name__}: {e}"}})
        finally:
            self.metrics.in_flight -= 1

    async def _read_body(self, scope: Scope, receive: Receive) -> Optional[bytes]:
        limit = self.config.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidInput("the Content-Length header is not a number") from None
                if declared > limit:
                    raise PayloadTooLarge(f"the body has {declared} bytes; the limit is {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # -- introspection ---------------------------------------------------------------------------

    def metrics_snapshot(self) -> dict[str, Any]:
        stats = self.batcher.stats if self.batcher is not None else None
        batches = stats.batches if stats else 0
        batched = stats.queries if stats else 0
        return {
            "ready": self.ready,
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - self.metrics.started_at, 3),
            "requests": self.metrics.requests,
            "queries": self.metrics.queries,
            "errors": self.metrics.errors,
            "errors_by_code": dict(self.metrics.errors_by_code),
            "in_flight": self.metrics.in_flight,
            "batches": batches,
            "batched_queries": batched,
            "mean_batch_size": round(batched / batches, 3) if batches else None,
            "mean_batch_latency_ms": round(1000.0 * stats.compute_seconds / batches, 3) if batches else None,
            "abandoned_calls": stats.abandoned if stats else 0,
            "stuck_calls": self.stuck_calls,
            "model_thread_replacements": self.replacements,
            "batching": self.config.batching,
            "batch_size_target": self.controller.batch_size if self.config.batching else 1,
            "target_latency_ms": self.config.target_latency_ms,
            "max_batch_size": self.config.max_batch_size,
            "latency_ms": self.metrics.latency_ms(),
        }

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"ready": self.ready, "bundle": self.config.bundle}
        if self.ensemble is not None:
            bundle = self.ensemble.bundle
            info.update({"app": bundle.app, "app_version": bundle.app_version, "task": bundle.task,
                         "members": self.ensemble.describe()})
        return info


def _deadline_seconds(scope: Scope) -> Optional[float]:
    """The request's X-Kilele-Deadline-Ms (or SageMaker custom attribute ``deadline_ms``) in
    seconds (None: the server's call timeout)."""
    for name, value in scope.get("headers", ()):
        if name == CUSTOM_ATTRIBUTES_HEADER:
            attributes = dict(part.strip().partition(b"=")[::2] for part in value.split(b","))
            if b"deadline_ms" not in attributes:
                continue
            name, value = DEADLINE_HEADER, attributes[b"deadline_ms"]
        if name == DEADLINE_HEADER:
            try:
                milliseconds = float(value)
            except ValueError:
                raise InvalidInput("the X-Kilele-Deadline-Ms header is not a number") from None
            if not milliseconds > 0 or milliseconds != milliseconds:
                raise InvalidInput("the X-Kilele-Deadline-Ms header must be a positive number of milliseconds")
            return milliseconds / 1000.0
    return None


async def _send(send: Send, status: int, content: bytes, head: bool = False) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": b"" if head else content})


async def _respond(send: Send, status: int, payload: Any, head: bool = False) -> None:
    await _send(send, status, orjson.dumps(payload, option=_JSON_OPTIONS), head=head)

