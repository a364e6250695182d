"""The model developer kit: subclass :class:`BaseModel`, describe knobs, test locally."""
from kilele.model.base import BaseModel
from kilele.model.dataset import ImageDataset, TabularDataset, load_image_classification, load_tabular
from kilele.model.dev import ModelContractError, test_model_class
from kilele.model.errors import InvalidQuery
from kilele.model.knobs import (
    BaseKnob,
    CategoricalKnob,
    FixedKnob,
    FloatKnob,
    IntegerKnob,
    KnobConfig,
    Knobs,
    PolicyKnob,
)
from kilele.model.loader import ModelLoadError, load_model_class
from kilele.model.params import Params, deserialize_params, serialize_params

__all__ = [
    "BaseModel", "BaseKnob", "FixedKnob", "CategoricalKnob", "IntegerKnob", "FloatKnob", "PolicyKnob",
    "KnobConfig", "Knobs", "Params", "serialize_params", "deserialize_params", "test_model_class",
    "ModelContractError", "load_model_class", "ModelLoadError", "load_tabular", "load_image_classification",
    "TabularDataset", "ImageDataset", "InvalidQuery",
]
