"""How a classification ensemble combines its members' answers, like with like.

A member's answer for a query is served as its ``predict`` returned it; several members are
combined only with answers of the same kind:

- probabilities as lists by class index (all of one length): their element-wise mean, a list;
- probabilities as ``{label: probability}``: the mean over the union of the labels (a label a
  member does not name counts 0 for it); labels become JSON object keys, so they are compared
  as strings;
- labels (a string, a number or a boolean per query): the majority vote, a tie going to the
  earliest member (members come best-scored first);
- kinds mixed: labels with probabilities vote, each probability answer with its most probable
  label (its index for a list); lists with dicts (or lists of different lengths) average as
  dicts keyed by the class index as a string.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from kilele_inference.errors import ModelError

LABEL_TYPES = (str, int, float, bool)


def _kind(prediction: Any) -> Optional[str]:
    if isinstance(prediction, dict):
        return "dict"
    if isinstance(prediction, (list, tuple)):
        return "list" if all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in prediction) else None
    if isinstance(prediction, LABEL_TYPES):
        return "label"
    return None


def _as_dict(prediction: Any) -> dict[str, float]:
    if isinstance(prediction, dict):
        return {str(label): float(p) for label, p in prediction.items()}
    return {str(i): float(p) for i, p in enumerate(prediction)}


def _top_label(prediction: Any) -> Any:
    if isinstance(prediction, dict):
        return max(prediction.items(), key=lambda kv: kv[1])[0] if prediction else None
    if isinstance(prediction, (list, tuple)):
        return int(np.argmax(prediction)) if prediction else None
    return prediction


def _vote(labels: Sequence[Any]) -> Any:
    counts: dict[Any, int] = {}
    for label in labels:  # dict keeps first-seen order: a tie goes to the earliest member
        counts[label] = counts.get(label, 0) + 1
    return max(counts.items(), key=lambda kv: kv[1])[0]


def _mean_dicts(predictions: Sequence[Any]) -> dict[str, float]:
    total: dict[str, float] = {}
    for prediction in predictions:
        for label, probability in _as_dict(prediction).items():
            total[label] = total.get(label, 0.0) + probability
    return {label: value / len(predictions) for label, value in total.items()}


def combine_one(predictions: Sequence[Any], describe: Callable[[int], str]) -> Any:
    """The ensemble's answer for one query from each member's (``describe(i)`` names member i)."""
    predictions = [p.tolist() if isinstance(p, (np.ndarray, np.generic)) else p for p in predictions]
    kinds = []
    for i, prediction in enumerate(predictions):
        kind = _kind(prediction)
        if kind is None:
            raise ModelError(f"{describe(i)}: predict() answered {type(prediction).__name__} "
                             f"{str(prediction)[:80]!r}; a classifier answers probabilities (a list or "
                             "{label: probability}) or a label per query")
        kinds.append(kind)
    found = set(kinds)
    if "label" in found:
        return _vote([_top_label(p) for p in predictions])
    if found == {"list"} and len({len(p) for p in predictions}) == 1:
        return np.mean(np.asarray(predictions, dtype=np.float64), axis=0).tolist()
    return _mean_dicts(predictions)


def combine_lists(answers: Sequence[Sequence[Any]], n: int, describe: Callable[[int], str]) -> list[Any]:
    """Each query's combined answer from the members' ``answers`` (one list of ``n`` per member)."""
    fast = _all_numeric_matrices(answers, n)
    if fast is not None:  # every member answered [n, classes] numbers: one mean, no per-query work
        return np.mean(fast, axis=0).tolist()
    return [combine_one([member[i] for member in answers], describe) for i in range(n)]


def _all_numeric_matrices(answers: Sequence[Sequence[Any]], n: int) -> Optional[np.ndarray]:
    matrices = []
    for answer in answers:
        if not answer or not isinstance(answer[0], (list, tuple)):
            return None
        try:
            matrix = np.asarray(answer)
        except ValueError:  # ragged
            return None
        if matrix.ndim != 2 or matrix.shape[0] != n or matrix.dtype.kind not in "iuf":
            return None
        matrices.append(matrix.astype(np.float64, copy=False))
    if len({m.shape for m in matrices}) != 1:
        return None
    return np.stack(matrices)
