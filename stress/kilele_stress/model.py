"""The model under test, for the standalone engine (RIME's convention).

A model is a Python file defining ``predict_df(df: pandas.DataFrame) -> numpy.ndarray`` (called
with a batch of rows) or ``predict_dict(row: dict) -> numpy.ndarray`` (called once per row). It
returns, per row:

* binary classification: the positive-class probability (the class that sorts last, as
  scikit-learn's ``classes_[1]``); a ``(n, 2)`` array of both probabilities is accepted;
* multi-class classification: one probability per class, columns in the sorted order of the
  reference's class labels;
* regression: the predicted value.

On the platform the model runs in the worker's sandboxed model process, which hands the engine
a callable of the same shape (``run_stress_test(..., model=callable)``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import pandas as pd

from kilele_stress.data import ModelTask

Predict = Callable[[pd.DataFrame], np.ndarray]


class ModelError(RuntimeError):
    """The model failed to load, raised, or returned something of the wrong shape."""


class RowModel:
    """A ``predict_dict(row)`` model called row by row (RIME's second convention)."""

    def __init__(self, predict_dict: Callable[[dict], Any]):
        self.predict_dict = predict_dict

    def __call__(self, df: pd.DataFrame) -> np.ndarray:
        # One Python call per row is the convention itself; model-in-the-loop tests bound the
        # number of rows they send.
        return np.stack([np.asarray(self.predict_dict(row), dtype=float).ravel()
                         for row in df.to_dict("records")]) if len(df) else np.empty((0,))


def as_model(obj: Any) -> Predict:
    """A ``predict(df) -> ndarray`` callable from: such a callable, or anything (a module, an
    object) with a ``predict_df`` or ``predict_dict`` attribute."""
    if hasattr(obj, "predict_df"):
        return obj.predict_df
    if hasattr(obj, "predict_dict"):
        return RowModel(obj.predict_dict)
    if callable(obj):
        return obj
    raise ModelError(f"{type(obj).__name__} is not a model: it defines neither predict_df nor predict_dict")


def load_model_file(path: Union[str, Path]) -> Predict:
    """Import a model file (``model_info.path``) and return its predict function.

    The file's folder is on ``sys.path`` while it is imported, so it can import its neighbours;
    it finds its own artefacts with ``Path(__file__).parent``.
    """
    p = Path(path)
    if "://" in str(path):
        raise ModelError(f"model_info.path: {path}: the engine loads local files; the platform fetches the model first")
    if not p.is_file():
        raise ModelError(f"model_info.path: {path}: no such file")
    name = "kilele_stress_model_" + hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise ModelError(f"model_info.path: {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(p.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 (any error of the user's code is a load failure)
        raise ModelError(f"model_info.path: {path}: importing it raised {type(e).__name__}: {e}") from e
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    if not (hasattr(module, "predict_df") or hasattr(module, "predict_dict")):
        raise ModelError(f"model_info.path: {path}: defines neither predict_df(df) nor predict_dict(row)")
    return as_model(module)


def normalize_output(raw: Any, task: ModelTask, n: int, n_classes: Optional[int] = None) -> np.ndarray:
    """The model's output for ``n`` rows as float64: ``(n,)`` (binary: positive-class
    probability; regression: the value) or ``(n, n_classes)`` (multi-class). Raises
    :class:`ModelError` naming what is wrong."""
    try:
        arr = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as e:
        raise ModelError(f"the model returned values that are not numbers ({e})") from e
    if arr.ndim == 0 or arr.shape[0] != n:
        got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} predictions"
        raise ModelError(f"the model returned {got} for {n} rows")
    if task == ModelTask.MULTICLASS:
        if arr.ndim != 2 or (n_classes is not None and arr.shape[1] != n_classes):
            raise ModelError(f"a multi-class model returns one column per class ({n_classes}); got shape {arr.shape}")
        return arr
    if arr.ndim == 2 and arr.shape[1] == 2 and task == ModelTask.BINARY:
        arr = arr[:, 1]
    elif arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ModelError(f"the model returned shape {arr.shape}; expected one value per row")
    if task == ModelTask.BINARY and n and (np.nanmin(arr) < 0 or np.nanmax(arr) > 1):
        raise ModelError("a binary classifier returns the positive-class probability, in [0, 1]; "
                         f"got values in [{np.nanmin(arr):g}, {np.nanmax(arr):g}]")
    return arr
