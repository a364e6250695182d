"""Predict payloads: the three styles a body comes in (Rafiki, Clipper, Cluster Serving), the
checks of Clipper's input types, top-N, and the answer in the style the request came in.

The API parses a body once, into ``schemas.PredictRequest``, whose discriminator is
:func:`style_of`; a plain dict (an SDK-less caller of the service) goes through
:func:`parse_payload`, which gives the same errors.
"""
from __future__ import annotations

import base64
import binascii
import random
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Optional

from chalicelib.entities import InputType
from chalicelib.errors import InvalidInput

#: key -> (style, batch?)
STYLES = {
    "query": ("rafiki", False),
    "queries": ("rafiki", True),
    "input": ("clipper", False),
    "input_batch": ("clipper", True),
    "instances": ("serving", True),
}


@dataclass(frozen=True)
class Payload:
    """A parsed predict body: which key it used and its queries (one for a single query)."""

    key: str
    queries: list[Any]

    @property
    def style(self) -> str:
        return STYLES[self.key][0]

    @property
    def batch(self) -> bool:
        return STYLES[self.key][1]


@dataclass
class Outcome:
    """What answered a request's queries. ``query_ids``: one id per query, returned to the caller
    (labels are sent later by it); ``endpoint``: the endpoint that answered (None: the default)."""

    predictions: list[Any]
    default: bool = False
    explanation: Optional[str] = None
    batch_size: Optional[int] = None
    query_ids: list[int] = field(default_factory=list)
    endpoint: Optional[str] = None


def new_query_ids(n: int) -> list[int]:
    """Random 52-bit query ids (Clipper's ``query_id`` is a number; 52 bits stay exact in every
    JSON reader, JavaScript's doubles included)."""
    return [random.getrandbits(52) for _ in range(n)]


DEFAULT_HEADER = "X-Kilele-Default"


@dataclass(frozen=True)
class Answer:
    """A predict answer's body, and whether it is the app's default output (every style says
    so in its body, and the ``X-Kilele-Default`` header says it for all)."""

    body: dict[str, Any]
    default: bool

    @property
    def headers(self) -> dict[str, str]:
        return {DEFAULT_HEADER: "true" if self.default else "false"}


def style_of(body: Any) -> str:
    """The one style key of a predict body; :class:`InvalidInput` says what is wrong."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object such as {\"query\": ...}, {\"input\": ...} or {\"instances\": [...]}")
    if len(body) != 1 or next(iter(body)) not in STYLES:
        raise InvalidInput(f"give exactly one of {', '.join(STYLES)}; got {', '.join(map(str, body)) or 'nothing'}")
    return next(iter(body))


def queries_of(key: str, value: Any) -> list[Any]:
    """The queries under ``key``: a batch key's list (checked), or the single query."""
    if not STYLES[key][1]:
        return [value]
    if not isinstance(value, list):
        raise InvalidInput(f"{key!r} must be a list")
    if not value:
        raise InvalidInput(f"{key!r} is empty")
    if key == "instances":
        # Cluster Serving instances may wrap each input in a one-key object ({"t": [...]})
        return [next(iter(q.values())) if isinstance(q, dict) and len(q) == 1 else q for q in value]
    return value


def parse_payload(body: Any) -> Payload:
    key = style_of(body)
    return Payload(key, queries_of(key, body[key]))


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
            raise InvalidInput(f"query {index} has {bad[0]!r}; input type {input_type.value} takes only "
                               f"{'integers' if input_type is InputType.INTS else 'numbers'}")


def _score(value: Any) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def top_n(prediction: Any, n: Optional[int]) -> Any:
    """Cluster Serving's top-N filter: probabilities by class index (a list) become
    ``[[index, probability], ...]``, the ``n`` most probable first (as Cluster Serving answers);
    ``{label: probability}`` keeps its ``n`` most probable labels; a label stays as it is."""
    if not n:
        return prediction
    if isinstance(prediction, dict):
        return dict(sorted(prediction.items(), key=lambda kv: _score(kv[1]), reverse=True)[:n])
    if isinstance(prediction, list) and prediction and all(
            isinstance(p, (int, float)) and not isinstance(p, bool) for p in prediction):
        ranked = sorted(enumerate(prediction), key=lambda ip: ip[1], reverse=True)
        return [[index, probability] for index, probability in ranked[:n]]
    return prediction


def answer(payload: Payload, outcome: Outcome) -> Answer:
    """The answer in the request's style: Rafiki's prediction(s), Cluster Serving's predictions,
    or Clipper's output with ``default`` and ``query_id``. A default output is marked in every
    style: Clipper's ``default`` per output; Rafiki's and Cluster Serving's answers carry
    ``"default": true`` and ``default_explanation`` beside their seed fields (only then, so
    that a model's answer keeps the seeds' shape); and the header for all. Every answer
    carries its queries' ids, by which labels are sent later: Clipper's ``query_id`` per
    output; beside Rafiki's ``prediction`` a ``query_id``, beside ``predictions`` the
    ``query_ids`` in the same order."""
    style, batch = payload.style, payload.batch
    ids = outcome.query_ids or new_query_ids(len(outcome.predictions))
    if style in ("rafiki", "serving"):
        if style == "rafiki" and not batch:
            body: dict[str, Any] = {"prediction": outcome.predictions[0], "query_id": ids[0]}
        else:
            body = {"predictions": outcome.predictions, "query_ids": ids}
        if outcome.default:
            body.update(default=True, default_explanation=outcome.explanation)
        return Answer(body, outcome.default)
    answers = []
    for prediction, query_id in zip(outcome.predictions, ids):
        one = {"query_id": query_id, "output": prediction, "default": outcome.default}
        if outcome.default:
            one["default_explanation"] = outcome.explanation
        answers.append(one)
    return Answer({"batch_predictions": answers} if batch else answers[0], outcome.default)
