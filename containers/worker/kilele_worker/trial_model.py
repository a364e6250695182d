"""A Kilele trial as the stress-test engine's model (issue 8 item 2(b)); used only in the child.

The platform resolves ``model_info: {"trial_id"}`` / ``{"app", "app_version"}`` to a trial: its
model file and class, knobs and parameters. The sandboxed model process rebuilds the model as the
worker trained it and the inference server serves it (``load_model_class``, ``cls(**knobs)``,
``load_parameters(deserialize_params(...))``), and :class:`TrialModel` adapts its
``predict(queries) -> list`` to the engine's ``predict_df(df) -> numpy.ndarray``:

* the queries are the rows of the feature columns (:func:`feature_columns`: the reference data's
  columns without the label, prediction and timestamp columns and ``features_not_in_model``, in
  the reference's column order, which must be the train dataset's), ``BATCH_ROWS`` at a time;
* the answers become the engine's convention (:func:`to_engine`): binary → the positive-class
  probability (the class that sorts last), multi-class → one column per class in the sorted order
  of the reference's labels, regression → the value.

Answers a classifier may give, per query: ``{label: probability}`` (the sample models; labels
matched to the data's by their text, so ``"1"`` is the class ``1``; a class the model does not
name gets 0), a list of probabilities in sorted class order (a binary model may give one number,
the positive-class probability), or a label (one-hot; a label the data never had is NaN, as the
engine treats such labels in ``pred_col``). A regressor answers a number (or a one-item list).
Anything else raises :class:`AnswerError`, which the engine reports as the model's failure.

This module imports no model code itself; :func:`load` does, and only the child calls it.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

BINARY = "Binary Classification"
MULTICLASS = "Multi-class Classification"
REGRESSION = "Regression"
#: Queries per ``predict()`` call (the engine's own batches are larger).
BATCH_ROWS = 2048


class AnswerError(ValueError):
    """The model's answers cannot be read as the engine's predictions."""


def feature_columns(columns: Iterable[Any], data_info: dict) -> list[str]:
    """The model's input columns: ``columns`` (the reference's, in order) without the label,
    prediction and timestamp columns and ``features_not_in_model``."""
    drop = {data_info.get(k) for k in ("label_col", "pred_col", "timestamp_col")} - {None}
    drop |= set(data_info.get("features_not_in_model") or ())
    return [str(c) for c in columns if str(c) not in drop]


def label_text(value: Any) -> str:
    """How a class label is matched between the data and the model (``1``, ``1.0``, ``"1"`` and
    ``"1.0"`` are one class)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value) == int(value):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    text = str(value).strip()
    try:
        number = float(text)  # a label read from text ("1", "1.0") is the number's class
    except ValueError:
        return text
    return label_text(number) if math.isfinite(number) else text


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise AnswerError(f"expected a number, got {type(value).__name__} {value!r:.80}")
    return float(value)


def to_engine(answers: Sequence[Any], task: str, classes: Optional[Sequence[Any]]) -> np.ndarray:
    """The model's answers for ``len(answers)`` rows in the engine's convention: ``(n,)`` for
    binary (positive-class probability) and regression, ``(n, len(classes))`` for multi-class."""
    n = len(answers)
    if task == REGRESSION:
        out = np.empty(n)
        for i, answer in enumerate(answers):
            if isinstance(answer, (list, tuple, np.ndarray)) and len(answer) == 1:
                answer = answer[0]
            out[i] = _number(answer)
        return out
    if not classes:
        raise AnswerError("a classification run needs the data's classes")
    k = len(classes)
    index = {label_text(c): j for j, c in enumerate(classes)}
    probs = np.zeros((n, k))
    matched_dict_keys = False
    for i, answer in enumerate(answers):
        if isinstance(answer, np.ndarray):
            answer = answer.tolist()
        if isinstance(answer, dict):
            for label, p in answer.items():
                j = index.get(label_text(label))
                if j is not None:
                    probs[i, j] = _number(p)
                    matched_dict_keys = True
        elif isinstance(answer, (list, tuple)):
            values = [_number(v) for v in answer]
            if len(values) == k:
                probs[i] = values
            elif k == 2 and len(values) == 1:
                probs[i] = (1.0 - values[0], values[0])
            else:
                raise AnswerError(f"a list of {len(values)} probabilities for {k} classes "
                                  f"({', '.join(map(label_text, classes))})")
        elif answer is None:
            probs[i] = np.nan
        else:
            j = index.get(label_text(answer))
            if j is not None:
                probs[i] = 0.0
                probs[i, j] = 1.0
            elif k == 2 and isinstance(answer, numbers.Real) and not isinstance(answer, (bool, np.bool_)) \
                    and 0.0 <= float(answer) <= 1.0:
                probs[i] = (1.0 - float(answer), float(answer))  # the positive-class probability
            elif isinstance(answer, (str, numbers.Real)):
                probs[i] = np.nan  # a label the data never had
            else:
                raise AnswerError(f"cannot read an answer of type {type(answer).__name__} as a prediction")
    if n and not matched_dict_keys and all(isinstance(a, dict) for a in answers):
        named = sorted({label_text(label) for a in answers for label in a})[:10]
        raise AnswerError(f"the model's classes {named} are none of the data's "
                          f"({', '.join(map(label_text, classes))})")
    return probs[:, 1] if task == BINARY else probs


class TrialModel:
    """``predict_df(df)`` for the engine, over a Kilele model's ``predict(queries)``."""

    def __init__(self, model: Any, features: Sequence[str], task: str, classes: Optional[Sequence[Any]],
                 batch_rows: int = BATCH_ROWS):
        self.model = model
        self.features = list(features)
        self.task = task
        self.classes = list(classes) if classes is not None else None
        self.batch_rows = batch_rows

    def queries(self, df: pd.DataFrame) -> list[list[Any]]:
        """The rows of the feature columns as lists (a missing value, or a column the frame lacks,
        is NaN)."""
        return df.reindex(columns=self.features).values.tolist() if len(df) else []

    def predict_df(self, df: pd.DataFrame) -> np.ndarray:
        queries = self.queries(df)
        parts = []
        for start in range(0, len(queries), self.batch_rows):
            batch = queries[start:start + self.batch_rows]
            answers = self.model.predict(batch)
            if isinstance(answers, np.ndarray):
                answers = answers.tolist()
            if not isinstance(answers, (list, tuple)):
                raise AnswerError(f"predict() returned {type(answers).__name__}, not a list")
            if len(answers) != len(batch):
                raise AnswerError(f"predict() returned {len(answers)} predictions for {len(batch)} queries")
            parts.append(to_engine(answers, self.task, self.classes))
        if not parts:
            return np.empty((0, len(self.classes or ()))) if self.task == MULTICLASS else np.empty((0,))
        return np.concatenate(parts, axis=0)


def load(kilele_model: dict, config: dict, ref: pd.DataFrame) -> TrialModel:
    """Rebuild the trial's model (imports its file: the child only) and wrap it for the engine.

    ``kilele_model``: ``{"model_path", "model_class", "params_path", "knobs"}``; ``config``: the
    engine's test run config; ``ref``: the reference data (its columns and labels)."""
    from kilele.model import deserialize_params, load_model_class
    from kilele_stress.data import ModelTask, class_labels, infer_task

    data_info = config["data_info"]
    label_col = data_info["label_col"]
    if label_col not in ref.columns:  # the engine says so, naming the key
        return TrialModel(None, [], REGRESSION, None)
    task = ModelTask(config["model_task"]) if config.get("model_task") else infer_task(ref[label_col])
    classes = class_labels(ref[label_col]) if task != ModelTask.REGRESSION else None
    cls = load_model_class(kilele_model["model_path"], kilele_model["model_class"])
    with open(kilele_model["params_path"], "rb") as f:
        params = deserialize_params(f.read())
    model = cls(**(kilele_model.get("knobs") or {}))
    model.load_parameters(params)
    return TrialModel(model, feature_columns(ref.columns, data_info), task.value, classes)


__all__ = ["TrialModel", "AnswerError", "feature_columns", "label_text", "to_engine", "load", "BATCH_ROWS"]
