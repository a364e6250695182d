"""Predictions: one route, three payload styles (Rafiki, Clipper, Cluster Serving), the app's
latency SLO with its default output, input types, top-N, and per-app metrics.

What one request costs: the body parsed once (``schemas.PredictRequest``, into a
:class:`~chalicelib.services.payloads.Payload`); the caller from the auth cache
(services/auth.py); the app and the ids of its live inference jobs from one consistent read of
the app's row (``ApplicationService.serving_state``; on the local stack from a cache its writes
drop: services/serving_cache.py says when which); the serving job's details from a cache by job
id (services/inference_jobs.py); one call to the endpoint (its body encoded once, with orjson);
metrics counted in memory and written in batches (services/serving_metrics.py); for an app that
captures traffic, a sample of requests' queries and answers buffered and written in the
background (services/capture.py).
"""
from __future__ import annotations

import json
import logging
import random
import time
from datetime import timedelta
from typing import Any, Callable, Optional, Union

import orjson

from chalicelib.entities import Application, User
from chalicelib.errors import InvalidInput, ModelFailed, NotFound, PayloadTooLarge, Unavailable, UpstreamTimeout
from chalicelib.latency import LATENCY_BUCKETS, bucket_upper_ms
from chalicelib.permissions import Action, require
from chalicelib.ports import (
    AppMetricsStore,
    EndpointModelError,
    EndpointRejected,
    EndpointRunner,
    EndpointTimeout,
    EndpointUnavailable,
    MetricsSink,
    ServingState,
)
from chalicelib.services import Clock, utc_now
from chalicelib.services.apps import ApplicationService
from chalicelib.services.capture import CaptureBuffer
from chalicelib.services.inference_jobs import InferenceJobService
from chalicelib.services.payloads import (Answer, Outcome, Payload, answer, check_input_type, new_query_ids,
                                         parse_payload, top_n)
from chalicelib.services.serving_metrics import MetricsBuffer

log = logging.getLogger("kilele.predict")


def _endpoint_body(queries: list[Any]) -> bytes:
    try:
        body = orjson.dumps({"queries": queries})
    except TypeError:  # what orjson does not encode (integers beyond 64 bits): as the json module does
        return _strict_json({"queries": queries})
    # orjson writes NaN and Infinity as null; the body parser let them in (pydantic reads them
    # as floats). Only a body with a null can hold one, so only then pay for the exact check.
    if b"null" in body:
        _strict_json(queries)
    return body


def _strict_json(value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=False).encode()
    except ValueError:
        raise InvalidInput("the body is not valid JSON: it has NaN or Infinity, which JSON has no numbers for "
                           "(send null or a number)") from None


class PredictService:
    def __init__(
        self,
        inference: InferenceJobService,
        apps: ApplicationService,
        endpoints: EndpointRunner,
        metrics: AppMetricsStore,
        sink: MetricsSink,
        timeout_seconds: float,
        max_queries: int,
        clock: Clock = utc_now,
        timer: Callable[[], float] = time.perf_counter,
        metrics_flush_seconds: float = 10.0,
        flush_timer: bool = True,
        capture: Optional[CaptureBuffer] = None,
        sample: Callable[[], float] = random.random,
    ):
        """``metrics_flush_seconds``: how often counted metrics are written (``flush_timer``:
        also on a background thread; off, they are written only at the end of a request that
        finds them older than that, and on :meth:`close`). ``capture``: where the sampled
        traffic of apps that capture goes (None: capture is off everywhere); ``sample``: a
        uniform number in [0, 1) per request, compared with the app's capture percentage."""
        self._inference = inference
        self._apps = apps
        self._endpoints = endpoints
        self._metrics = MetricsBuffer(metrics, metrics_flush_seconds, timer=flush_timer)
        self._sink = sink
        self._timeout = timeout_seconds
        self._max_queries = max_queries
        self._clock = clock
        self._timer = timer
        self._capture = capture
        self._sample = sample

    def close(self) -> None:
        """Write the metrics counted and the traffic captured but not written yet (and stop
        their flush timers)."""
        self._metrics.close()
        if self._capture is not None:
            self._capture.close()

    def flush_metrics(self) -> None:
        self._metrics.flush()

    def flush_capture(self) -> None:
        """Write the captured traffic buffered so far (a test's or a stopping process's)."""
        if self._capture is not None:
            self._capture.flush()

    def predict(self, actor: User, app_name: str, body: Union[Payload, Any]) -> dict[str, Any]:
        """Answer a predict request in the payload style it came in (``body``: a parsed
        :class:`Payload`, or a JSON object in one of the styles)."""
        return self.predict_answer(actor, app_name, body).body

    def predict_answer(self, actor: User, app_name: str, body: Union[Payload, Any]) -> Answer:
        """:meth:`predict`'s answer with its HTTP headers (``X-Kilele-Default``)."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        payload = body if isinstance(body, Payload) else parse_payload(body)
        if len(payload.queries) > self._max_queries:
            raise PayloadTooLarge(f"{len(payload.queries)} queries in one request; the limit is {self._max_queries}")
        return answer(payload, self.predict_queries(actor.id, app_name, payload.queries))

    def predict_queries(self, user_id: str, app_name: str, queries: list[Any]) -> Outcome:
        """Predictions for ``queries`` from the app's serving version (also used by the queue
        consumer); counted in the app's metrics."""
        started = self._timer()
        state = self._apps.serving_state(user_id, app_name)
        app = state.app
        if app and app.input_type:
            check_input_type(queries, app.input_type)
        error = True
        outcome: Optional[Outcome] = None
        try:
            outcome = self.run(user_id, app_name, state, queries, started)
            outcome.query_ids = new_query_ids(len(queries))
            error = False
            if app is not None and app.capture_percent > 0 and self._capture is not None:
                self._capture_sample(user_id, app_name, app.capture_percent, queries, outcome)
        finally:
            latency_ms = (self._timer() - started) * 1000
            default = bool(outcome and outcome.default)
            self._metrics.record(f"{user_id}#{app_name}", self._clock(), latency_ms, len(queries), error, default,
                                 batch_size=outcome.batch_size if outcome else None)
            self._sink.emit(app_name, latency_ms, len(queries), error, default)
            self._metrics.flush_if_due()  # on Lambda, where the flush timer sleeps between requests
            if self._capture is not None:
                self._capture.flush_if_due()
        return outcome

    def _capture_sample(self, user_id: str, app_name: str, percent: float, queries: list[Any],
                        outcome: Outcome) -> None:
        if percent < 100 and self._sample() * 100 >= percent:
            return
        try:
            self._capture.add_answers(user_id, app_name, outcome.endpoint, [str(i) for i in outcome.query_ids],
                                      queries, outcome.predictions, self._clock(), outcome.default)
        except Exception:  # noqa: BLE001 - a record that cannot be made must not fail the answer
            log.exception("could not capture a predict request of %s", app_name)

    def run(self, user_id: str, app_name: str, state: ServingState, queries: list[Any],
            started: float) -> Outcome:
        """Ask the app's endpoint; past the SLO (or if it is down) answer the default output."""
        app = state.app
        deadline = app.slo_micros / 1e6 if app else self._timeout
        try:
            job = self._inference.serving_job(user_id, app_name, state)
        except NotFound as e:  # no running job: defaulted if the app has a default, else the error
            if app is None and not state.live_job_ids and not self._inference.has_jobs(user_id, app_name):
                raise NotFound(f"there is no app {app_name!r}: register it (POST /apps) or create an inference job "
                               "for it") from e
            return self._default_or_raise(app, queries, e)
        body = _endpoint_body(queries)
        remaining = deadline - (self._timer() - started)
        try:
            if remaining <= 0:
                raise EndpointTimeout("the latency SLO was spent before the model was asked")
            raw = self._endpoints.invoke(job.endpoint_name, body, remaining)
            reply = orjson.loads(raw)
            predictions = reply["predictions"]
        except EndpointRejected as e:
            raise InvalidInput(f"the model rejected the queries: {e}") from e
        except EndpointModelError as e:  # the model raised: not the caller's fault, and no default hides it
            raise ModelFailed(f"the model failed: {e}") from e
        except EndpointUnavailable as e:
            try:
                self._inference.report_endpoint_failure(job)
            except Exception as report_error:  # noqa: BLE001 - e.g. DescribeEndpoint throttled or unreachable
                # The caller still gets the app's default output (or a 503), never a 500 from here.
                log.warning("predict %s: could not check endpoint %s after it failed (%s): %s",
                            app_name, job.endpoint_name, e, report_error)
            return self._default_or_raise(app, queries, e)
        except EndpointTimeout as e:
            return self._default_or_raise(app, queries, e)
        top = app.top_n if app else None
        if top:
            predictions = [top_n(p, top) for p in predictions]
        return Outcome(predictions, batch_size=reply.get("batch_size"), endpoint=job.endpoint_name)

    def _default_or_raise(self, app: Optional[Application], queries: list[Any], error: Exception) -> Outcome:
        if app is not None:
            return Outcome([app.default_output] * len(queries), default=True, explanation=str(error))
        if isinstance(error, EndpointTimeout):
            raise UpstreamTimeout(f"{error} (register the app with a default output to get it instead)") from error
        if isinstance(error, EndpointUnavailable):
            raise Unavailable(str(error)) from error
        raise error

    def metrics(self, actor: User, app_name: str, minutes: int = 60) -> list[dict[str, Any]]:
        """Cluster Serving's metrics shape, over the last ``minutes`` (this process's counts not
        yet written included). ``meanRate`` is per second over the time the app has been
        observed in the window: from the start of its first minute with a request (metrics are
        kept per minute), not over the whole window. An app that is neither registered nor has
        an inference job is not found."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        state = self._apps.serving_state(actor.id, app_name)
        if state.app is None and not state.live_job_ids and not self._inference.has_jobs(actor.id, app_name):
            raise NotFound(f"there is no app {app_name!r}")
        now = self._clock()
        window = self._metrics.window(f"{actor.id}#{app_name}", now - timedelta(minutes=minutes))
        first_minute = window.get("first_minute")
        seconds = minutes * 60.0
        if first_minute is not None:  # never more than the window, never under one second
            seconds = min(seconds, max(1.0, now.timestamp() - first_minute * 60))
        metrics = [
            {"name": f"kilele.{name}", "count": window[name], "meanRate": window[name] / seconds}
            for name in ("requests", "queries", "errors", "defaults")
        ]
        batches = window.get("batches", 0)
        metrics.append({"name": "kilele.batch_size", "count": batches,
                        "mean": (window.get("batch_size_sum", 0) / batches) if batches else None})
        metrics.append(_latency_summary(window["histogram"], seconds))
        return metrics


def _latency_summary(histogram: list[int], seconds: float) -> dict[str, Any]:
    count = sum(histogram)
    summary: dict[str, Any] = {"name": "kilele.latency_ms", "count": count, "meanRate": count / seconds}
    if not count:
        return summary

    def percentile(p: float) -> float:
        target, seen = p * count, 0
        for index, n in enumerate(histogram):
            seen += n
            if seen >= target:
                return round(bucket_upper_ms(index), 3)
        return round(bucket_upper_ms(LATENCY_BUCKETS - 1), 3)

    nonzero = [i for i, n in enumerate(histogram) if n]
    summary.update(
        min=round(bucket_upper_ms(nonzero[0] - 1) if nonzero[0] else 0.0, 3),
        max=round(bucket_upper_ms(nonzero[-1]), 3),
        median=percentile(0.5), _75thPercentile=percentile(0.75), _95thPercentile=percentile(0.95),
        _98thPercentile=percentile(0.98), _99thPercentile=percentile(0.99), _999thPercentile=percentile(0.999),
        note="percentiles are upper bounds of 20%-wide histogram buckets",
    )
    return summary
