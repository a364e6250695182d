"""``test_model_class``: run a model file through the whole contract on your machine before uploading."""
from __future__ import annotations

import json
import math
import random
import time
from typing import Any, Callable, Optional

from kilele.model.base import BaseModel
from kilele.model.knobs import (
    BaseKnob,
    CategoricalKnob,
    FixedKnob,
    FloatKnob,
    IntegerKnob,
    Knobs,
    PolicyKnob,
    serialize_knob_config,
    validate_knobs,
)
from kilele.model.loader import load_model_class
from kilele.model.params import deserialize_params, serialize_params


class ModelContractError(Exception):
    """The model breaks the contract; the message says which step and why."""


def sample_knob(knob: BaseKnob, rng: random.Random) -> Any:
    """A random valid value for a knob (log-uniform for ``is_exp`` ranges)."""
    if isinstance(knob, FixedKnob):
        return knob.value
    if isinstance(knob, CategoricalKnob):
        return rng.choice(knob.values)
    if isinstance(knob, PolicyKnob):
        return False
    if isinstance(knob, (IntegerKnob, FloatKnob)):
        low, high = knob.value_min, knob.value_max
        value = math.exp(rng.uniform(math.log(low), math.log(high))) if knob.is_exp else rng.uniform(low, high)
        return min(max(int(round(value)), int(low)), int(high)) if isinstance(knob, IntegerKnob) else value
    raise ModelContractError(f"unknown knob type {type(knob).__name__}")


def _step(name: str, log: Callable[[str], None], fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        result = fn()
    except ModelContractError:
        raise
    except Exception as e:
        raise ModelContractError(f"{name} raised {type(e).__name__}: {e}") from e
    log(f"  ok  {name} ({time.perf_counter() - started:.2f} s)")
    return result


def test_model_class(
    model_file_path: str,
    model_class: str,
    task: str,
    dependencies: Optional[dict[str, str]],
    train_dataset_path: str,
    val_dataset_path: str,
    queries: Optional[list[Any]] = None,
    knobs: Optional[Knobs] = None,
    train_args: Optional[dict[str, Any]] = None,
    log: Callable[[str], None] = print,
) -> BaseModel:
    """Load the class from its file, check its knob config, train with ``knobs`` (random
    valid ones by default), evaluate, round-trip the parameters through the platform's
    format into a fresh instance and compare predictions on ``queries``. Returns the
    trained model; raises :class:`ModelContractError` saying what is wrong."""
    log(f"Testing {model_class} from {model_file_path} for {task} (dependencies: {dependencies or {}})")
    cls = _step("load the model class", log, lambda: load_model_class(model_file_path, model_class))
    config = _step("get_knob_config()", log, cls.get_knob_config)
    if not isinstance(config, dict) or not all(isinstance(k, BaseKnob) for k in config.values()):
        raise ModelContractError("get_knob_config() must return a dict of knob name -> Knob")
    _step("knob config is JSON-serializable", log, lambda: json.dumps(serialize_knob_config(config)))
    chosen = knobs if knobs is not None else {n: sample_knob(k, random.Random(0)) for n, k in config.items()}
    _step("knobs match the config", log, lambda: validate_knobs(config, chosen))
    log(f"      knobs: {chosen}")
    model = _step("__init__(**knobs)", log, lambda: cls(**chosen))
    _step("train()", log, lambda: model.train(train_dataset_path, **(train_args or {})))
    score = _step("evaluate()", log, lambda: model.evaluate(val_dataset_path))
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise ModelContractError(f"evaluate() must return a float, got {score!r}")
    log(f"      score: {score:.6g}")
    blob = _step("dump_parameters() in the platform's format", log, lambda: serialize_params(model.dump_parameters()))
    restored = _step("__init__ + load_parameters()", log, lambda: _restore(cls, chosen, blob))
    if queries is not None:
        first = _step("predict()", log, lambda: model.predict(queries))
        _check_predictions(first, queries)
        second = _step("predict() after load_parameters()", log, lambda: restored.predict(queries))
        if json.dumps(_plain(first)) != json.dumps(_plain(second)):
            raise ModelContractError("predictions differ after dump_parameters()/load_parameters()")
    onnx = _step("export_onnx()", log, model.export_onnx)
    if onnx is not None and not isinstance(onnx, (bytes, bytearray)):
        raise ModelContractError("export_onnx() must return bytes or None")
    log(f"{model_class} passes the model contract.")
    return model


def _restore(cls: type[BaseModel], knobs: Knobs, blob: bytes) -> BaseModel:
    model = cls(**knobs)
    model.load_parameters(deserialize_params(blob))
    return model


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _check_predictions(predictions: Any, queries: list[Any]) -> None:
    if not isinstance(predictions, list) or len(predictions) != len(queries):
        raise ModelContractError(f"predict() must return a list with one prediction per query ({len(queries)})")
    try:
        json.dumps(_plain(predictions))
    except TypeError as e:
        raise ModelContractError(f"predictions must be JSON-serializable: {e}") from e

# pytest must not collect this helper as a test when a test module imports it.
test_model_class.__test__ = False  # type: ignore[attr-defined]
