"""The ensemble of a bundle's members: checks queries, runs the members on a batch, combines.

- classification (TABULAR_CLASSIFICATION, IMAGE_CLASSIFICATION): one member's answers as its
  ``predict`` returned them; several members' combined like with like (kilele_inference/combine.py:
  lists of probabilities averaged as lists, ``{label: probability}`` as dicts, labels by vote);
- regression (TABULAR_REGRESSION): the mean of the members' floats;
- any other task: the first member's answer (only that member is loaded).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from kilele_inference.bundle import CLASSIFICATION_TASKS, REGRESSION_TASKS, BundleSpec, read_bundle
from kilele_inference.errors import BundleError, InvalidInput, ModelError, json_type
from kilele_inference.combine import combine_lists
from kilele_inference.members import (LabelledProbabilities, Member, MemberFailed, MemberRaised, MemberRejected,
                                      OnnxMember, load_members)

logger = logging.getLogger("kilele_inference")


LABEL = "{label}"  # where a query's name ("query 3", "the query") goes in a rejection message


@dataclass
class Rejected:
    """The outcome for one query that a member (or the server) rejected: the caller's error."""

    reason: str  # with LABEL where the query is named

    def message(self, label: str) -> str:
        return self.reason.replace(LABEL, label)


@dataclass
class Failed(Rejected):
    """The outcome for one query a member failed on (its predict raised): the model's error."""


Outcome = Union[Any, Rejected]


def task_kind(task: str) -> str:
    """classification, regression or other."""
    if task in CLASSIFICATION_TASKS:
        return "classification"
    if task in REGRESSION_TASKS:
        return "regression"
    return "other"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _first_non_number(query: Any, path: str = "") -> Optional[tuple[str, Any]]:
    """Where a query (nested lists) holds something that is not a number (for error messages)."""
    if isinstance(query, (list, tuple)):
        for i, item in enumerate(query):
            found = _first_non_number(item, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if _number(query) else (path, query)


class Ensemble:
    def __init__(self, bundle: BundleSpec, members: list[Member]):
        if not members:
            raise BundleError("the bundle has no member to serve")
        self.bundle = bundle
        self.task = bundle.task
        self.kind = task_kind(bundle.task)
        self.members = members if self.kind != "other" else members[:1]
        self.needs_arrays = any(isinstance(m, OnnxMember) for m in self.members)
        sizes = {m.features for m in self.members if isinstance(m, OnnxMember) and m.features is not None}
        if len(sizes) > 1:
            raise BundleError(f"the members' ONNX graphs expect different numbers of features: {sorted(sizes)}")
        self.features: Optional[int] = sizes.pop() if sizes else None

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"trial_id": m.spec.trial_id, "model_name": m.spec.model_name, "model_class": m.spec.model_class,
             "path": m.path}
            for m in self.members
        ]

    # -- queries ---------------------------------------------------------------------------------

    def prepare(self, query: Any, label: str) -> Optional[np.ndarray]:
        """Checks one query before it joins a batch; returns it as a flat float32 array when an
        ONNX member needs one (else None). Raises :class:`InvalidInput` saying what is wrong."""
        if not self.needs_arrays:
            return None
        expected = f"a list of {self.features} numbers" if self.features else "a list of numbers"
        if not isinstance(query, list):
            raise InvalidInput(f"{label} is {json_type(query)}; the model expects {expected}")
        try:
            array = np.asarray(query)
        except ValueError:
            raise InvalidInput(f"{label} is a ragged nested list; the model expects {expected}") from None
        if array.dtype.kind not in "iuf" or (array.ndim == 1 and any(v is True or v is False for v in query)):
            found = _first_non_number(query)
            if found is not None:
                where, value = found
                raise InvalidInput(f"{label} has {json_type(value)} at {where or 'its top'}; "
                                   f"the model expects {expected}")
            raise InvalidInput(f"{label} is not {expected}")
        with np.errstate(over="ignore"):
            flat = array.astype(np.float32, copy=False).reshape(-1)
        if self.features is not None and flat.shape[0] != self.features:
            raise InvalidInput(f"{label} has {flat.shape[0]} features, the model expects {self.features}")
        if not np.isfinite(flat).all():
            raise InvalidInput(f"{label} has a value out of the float32 range")
        return flat

    # -- batches ---------------------------------------------------------------------------------

    def predict_batch(self, queries: Sequence[Any], arrays: Optional[Sequence[np.ndarray]] = None) -> list[Any]:
        """One ensemble answer per query. Raises :class:`MemberRejected` when a member raises on the
        batch, :class:`ModelError` when a member's answer is unusable."""
        n = len(queries)
        if n == 0:
            return []
        batch: Optional[np.ndarray] = None
        if self.needs_arrays:
            if arrays is None:
                arrays = [self.prepare(q, f"query {i}") for i, q in enumerate(queries)]
            try:
                batch = np.stack(arrays)
            except ValueError as e:  # queries of different sizes for a graph without a fixed size
                raise MemberRejected(None, e) from e
        answers = [member.run(queries, batch) for member in self.members]
        return self.combine(answers, n)

    def evaluate(self, queries: Sequence[Any], arrays: Optional[Sequence[np.ndarray]] = None) -> list[Outcome]:
        """:meth:`predict_batch`, and when a member raises on the batch, each query alone, so that
        one bad query fails only itself: the result holds, per query, an answer, a
        :class:`Rejected` (the query is wrong) or a :class:`Failed` (the model failed on it)."""
        try:
            return self.predict_batch(queries, arrays)
        except (MemberRaised, InvalidInput) as e:
            if len(queries) == 1:
                return [_outcome_of(e)]
            logger.info("a batch of %d queries raised (%s); evaluating them one by one", len(queries), e)
        outcomes: list[Outcome] = []
        for i, query in enumerate(queries):
            try:
                array = None
                if self.needs_arrays:
                    array = arrays[i] if arrays is not None else self.prepare(query, LABEL)
                outcomes.extend(self.predict_batch([query], None if array is None else [array]))
            except (MemberRaised, InvalidInput) as e:
                outcomes.append(_outcome_of(e))
        return outcomes

    # -- combining -------------------------------------------------------------------------------

    def combine(self, answers: list[Any], n: int) -> list[Any]:
        if self.kind == "classification":
            return self._combine_probabilities(answers, n)
        if self.kind == "regression":
            return self._combine_floats(answers, n)
        first = answers[0]
        return first.as_dicts() if isinstance(first, LabelledProbabilities) else list(first)

    def _combine_probabilities(self, answers: list[Any], n: int) -> list[Any]:
        if all(isinstance(a, LabelledProbabilities) for a in answers) and len({a.labels for a in answers}) == 1:
            if len(answers) == 1:
                return answers[0].as_dicts()
            mean = np.mean([a.matrix.astype(np.float64) for a in answers], axis=0)
            return LabelledProbabilities(answers[0].labels, mean).as_dicts()
        per_member = [a.as_dicts() if isinstance(a, LabelledProbabilities) else list(a) for a in answers]
        if len(per_member) == 1:  # what the model's predict returned, as it returned it
            return per_member[0]
        return combine_lists(per_member, n, lambda i: self.members[i].spec.describe())

    def _combine_floats(self, answers: list[Any], n: int) -> list[float]:
        columns = []
        for answer, member in zip(answers, self.members):
            try:
                column = np.asarray(answer, dtype=np.float64).reshape(n, -1)
            except (TypeError, ValueError):
                column = None
            if column is None or column.shape[1] != 1:
                raise ModelError(f"{member.spec.describe()}: a regressor answers one number per query")
            columns.append(column[:, 0])
        if len(columns) == 1:
            return columns[0].tolist()
        return np.mean(columns, axis=0).tolist()


def _outcome_of(error: Exception) -> Outcome:
    if isinstance(error, InvalidInput):
        return Rejected(error.message)
    if isinstance(error, MemberFailed):
        return Failed(f"{LABEL}: {error}")
    return Rejected(f"{LABEL}: {error}")


def load_ensemble(path: str, use_onnx: bool = True, onnx_threads: int = 1,
                  providers: Optional[list[str]] = None) -> Ensemble:
    """Reads the bundle at ``path`` and loads its members (for the server, tests and scripts)."""
    bundle = read_bundle(path)
    kind = task_kind(bundle.task)
    specs = bundle.members
    if kind == "other" and len(specs) > 1:
        logger.info("task %s: answers come from the first member only; %d other member(s) are not loaded",
                    bundle.task, len(specs) - 1)
        bundle = BundleSpec(bundle.root, bundle.app, bundle.app_version, bundle.task, specs[:1], bundle.requirements)
    members = load_members(bundle, kind, use_onnx=use_onnx, onnx_threads=onnx_threads, providers=providers)
    ensemble = Ensemble(bundle, members)
    logger.info("bundle %s (app %s v%s, task %s): %d member(s) loaded (%s)", bundle.root, bundle.app,
                bundle.app_version, bundle.task, len(members),
                ", ".join(f"{m.spec.model_name}: {m.path}" for m in ensemble.members))
    return ensemble
