"""``BaseModel``: the contract a model file implements to be trained and served by Kilele."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional

from kilele.model.knobs import KnobConfig
from kilele.model.params import Params


class BaseModel(ABC):
    """Subclass this in one Python file and upload it with ``Client.create_model``.

    The platform proposes knob values from :meth:`get_knob_config`, builds the model with
    them, trains it on the train dataset, scores it on the validation dataset (higher is
    better), stores :meth:`dump_parameters`, and later rebuilds it with the same knobs and
    :meth:`load_parameters` to serve :meth:`predict`.
    """

    @staticmethod
    @abstractmethod
    def get_knob_config() -> KnobConfig:
        """The search space: knob name -> FixedKnob, CategoricalKnob, IntegerKnob, FloatKnob or PolicyKnob."""

    def __init__(self, **knobs: Any):
        self.knobs = knobs

    @abstractmethod
    def train(self, dataset_path: str, **train_args: Any) -> None:
        """Train on the dataset file at ``dataset_path`` (its task's format)."""

    @abstractmethod
    def evaluate(self, dataset_path: str) -> float:
        """Score on the dataset at ``dataset_path``; higher is better (e.g. accuracy, -MSE)."""

    @abstractmethod
    def predict(self, queries: list[Any]) -> list[Any]:
        """One JSON-able prediction per query, served as returned: for classification, class
        probabilities (``{label: probability}`` or a list by class index) or labels. Raise
        :class:`kilele.model.InvalidQuery` for a query the model cannot take (the caller gets a
        400 with its message); any other exception is a model error (502)."""

    @abstractmethod
    def dump_parameters(self) -> Params:
        """The trained state: str, int, float, bool, bytes and numpy arrays."""

    @abstractmethod
    def load_parameters(self, params: Params) -> None:
        """Restore the state returned by :meth:`dump_parameters`."""

    def export_onnx(self) -> Optional[bytes]:
        """Optionally, an ONNX graph of the trained model for fast serving. Input ``input``:
        float32 ``[batch, features]`` (each query flattened). Output: ``probabilities``
        ``[batch, classes]`` for classification (see :meth:`onnx_classes`), else the first output
        holds the predictions (``[batch]`` or ``[batch, 1]`` for regression)."""
        return None

    def onnx_classes(self) -> Optional[list[Any]]:
        """For a classifier with an ONNX graph: the class label of each ``probabilities`` column,
        in order (the inference server answers ``{label: probability}`` per query, as
        :meth:`predict` does). Without it, classifiers are served with :meth:`predict`."""
        return None
