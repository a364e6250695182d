"""Predictions: one route, three payload styles (Rafiki, Clipper, Cluster Serving), the app's
latency SLO with its default output, input types, top-N, and per-app metrics."""
from __future__ import annotations

import base64
import binascii
import json
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from numbers import Integral, Real
from typing import Any, Callable, Optional

from chalicelib.entities import Application, InputType, User
from chalicelib.errors import InvalidInput, NotFound, PayloadTooLarge, Unavailable, UpstreamTimeout
from chalicelib.permissions import Action, require
from chalicelib.services import Clock, utc_now
from chalicelib.services.apps import ApplicationService
from chalicelib.services.inference_jobs import InferenceJobService
from chalicelib.latency import LATENCY_BUCKETS, bucket_upper_ms
from chalicelib.ports import (
    AppMetricsStore,
    EndpointRejected,
    EndpointRunner,
    EndpointTimeout,
    EndpointUnavailable,
    MetricsSink,
)

STYLES = {
    "query": ("rafiki", False),
    "queries": ("rafiki", True),
    "input": ("clipper", False),
    "input_batch": ("clipper", True),
    "instances": ("serving", True),
}


@dataclass
class Outcome:
    predictions: list[Any]
    default: bool = False
    explanation: Optional[str] = None
    batch_size: Optional[int] = None


def parse_payload(body: Any, max_queries: int) -> tuple[str, bool, list[Any]]:
    """(style, batch?, queries) of a predict body; :class:`InvalidInput` says what is wrong."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object such as {\"query\": ...}, {\"input\": ...} or {\"instances\": [...]}")
    keys = [k for k in body if k in STYLES]
    if len(keys) != 1 or len(body) != 1:
        raise InvalidInput(f"give exactly one of {', '.join(STYLES)}; got {', '.join(map(str, body)) or 'nothing'}")
    key = keys[0]
    style, batch = STYLES[key]
    queries = body[key] if batch else [body[key]]
    if not isinstance(queries, list):
        raise InvalidInput(f"{key!r} must be a list")
    if not queries:
        raise InvalidInput(f"{key!r} is empty")
    if len(queries) > max_queries:
        raise PayloadTooLarge(f"{len(queries)} queries in one request; the limit is {max_queries}")
    if style == "serving":
        # Cluster Serving instances may wrap each input in a one-key object ({"t": [...]})
        queries = [next(iter(q.values())) if isinstance(q, dict) and len(q) == 1 else q for q in queries]
    return style, batch, queries


def _elements(query: Any) -> list[Any]:
    if isinstance(query, list):
        out: list[Any] = []
        for item in query:
            out.extend(_elements(item))
        return out
    return [query]


def check_input_type(queries: list[Any], input_type: InputType) -> None:
    """Clipper's input types: ints, floats/doubles (vectors of numbers), strings, bytes (base64)."""
    for index, query in enumerate(queries):
        if input_type in (InputType.STRINGS, InputType.BYTES):
            if not isinstance(query, str):
                raise InvalidInput(f"query {index} must be a string for input type {input_type.value}")
            if input_type is InputType.BYTES:
                try:
                    base64.b64decode(query, validate=True)
                except (binascii.Error, ValueError) as e:
                    raise InvalidInput(f"query {index} must be base64 for input type bytes") from e
            continue
        elements = _elements(query)
        if not isinstance(query, list) or not elements:
            raise InvalidInput(f"query {index} must be a non-empty list of numbers for input type {input_type.value}")
        wanted = Integral if input_type is InputType.INTS else Real
        bad = [e for e in elements if isinstance(e, bool) or not isinstance(e, wanted)]
        if bad:
            bad = bad[0]
            raise InvalidInput(f"query {index} has {bad!r}; input type {input_type.value} takes only "
                               f"{'integers' if input_type is InputType.INTS else 'numbers'}")


def top_n(prediction: Any, n: Optional[int]) -> Any:
    if not n or not isinstance(prediction, dict):
        return prediction
    ranked = sorted(prediction.items(), key=lambda kv: kv[1] if isinstance(kv[1], (int, float)) else 0, reverse=True)
    return dict(ranked[:n])


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
    ):
        self._inference = inference
        self._apps = apps
        self._endpoints = endpoints
        self._metrics = metrics
        self._sink = sink
        self._timeout = timeout_seconds
        self._max_queries = max_queries
        self._clock = clock
        self._timer = timer

    def close(self) -> None:
        """Flush buffered metrics. Nothing is buffered yet: every request writes its own."""

    def predict(self, actor: User, app_name: str, body: Any) -> dict[str, Any]:
        """Answer a predict request in the payload style it came in."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        style, batch, queries = parse_payload(body, self._max_queries)
        return _answer(style, batch, self.predict_queries(actor.id, app_name, queries))

    def predict_queries(self, user_id: str, app_name: str, queries: list[Any]) -> Outcome:
        """Predictions for ``queries`` from the app's serving version (also used by the queue
        consumer); counted in the app's metrics."""
        started = self._timer()
        app = self._apps.find(user_id, app_name)
        if app and app.input_type:
            check_input_type(queries, app.input_type)
        error = True
        outcome: Optional[Outcome] = None
        try:
            outcome = self.run(user_id, app_name, app, queries, started)
            error = False
        finally:
            latency_ms = (self._timer() - started) * 1000
            default = bool(outcome and outcome.default)
            self._metrics.record(f"{user_id}#{app_name}", self._clock(), latency_ms, len(queries), error, default,
                                 batch_size=outcome.batch_size if outcome else None)
            self._sink.emit(app_name, latency_ms, len(queries), error, default)
        return outcome

    def run(self, user_id: str, app_name: str, app: Optional[Application], queries: list[Any],
            started: float) -> Outcome:
        """Ask the app's endpoint; past the SLO (or if it is down) answer the default output."""
        deadline = app.slo_micros / 1e6 if app else self._timeout
        try:
            job = self._inference.running_job(user_id, app_name, app.version if app and app.version else -1)
        except NotFound as e:  # no running job: defaulted if the app has a default, else the error
            return self._default_or_raise(app, queries, e)
        remaining = deadline - (self._timer() - started)
        try:
            if remaining <= 0:
                raise EndpointTimeout("the latency SLO was spent before the model was asked")
            raw = self._endpoints.invoke(job.endpoint_name, json.dumps({"queries": queries}).encode(), remaining)
            answer = json.loads(raw)
            predictions = answer["predictions"]
        except EndpointRejected as e:
            raise InvalidInput(f"the model rejected the queries: {e}") from e
        except EndpointUnavailable as e:
            self._inference.report_endpoint_failure(job)
            return self._default_or_raise(app, queries, e)
        except EndpointTimeout as e:
            return self._default_or_raise(app, queries, e)
        top = app.top_n if app else None
        return Outcome([top_n(p, top) for p in predictions], batch_size=answer.get("batch_size"))

    def _default_or_raise(self, app: Optional[Application], queries: list[Any], error: Exception) -> Outcome:
        if app is not None:
            return Outcome([app.default_output] * len(queries), default=True, explanation=str(error))
        if isinstance(error, EndpointTimeout):
            raise UpstreamTimeout(f"{error} (register the app with a default output to get it instead)") from error
        if isinstance(error, EndpointUnavailable):
            raise Unavailable(str(error)) from error
        raise error

    def metrics(self, actor: User, app_name: str, minutes: int = 60) -> list[dict[str, Any]]:
        """Cluster Serving's metrics shape, over the last ``minutes``."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        window = self._metrics.window(f"{actor.id}#{app_name}", self._clock() - timedelta(minutes=minutes))
        seconds = minutes * 60
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


def _answer(style: str, batch: bool, outcome: Optional[Outcome]) -> dict[str, Any]:
    assert outcome is not None
    if style == "rafiki":
        return {"predictions": outcome.predictions} if batch else {"prediction": outcome.predictions[0]}
    if style == "serving":
        return {"predictions": outcome.predictions}
    answers = []
    for prediction in outcome.predictions:
        answer = {"query_id": random.getrandbits(52), "output": prediction, "default": outcome.default}
        if outcome.default:
            answer["default_explanation"] = outcome.explanation
        answers.append(answer)
    return {"batch_predictions": answers} if batch else answers[0]
