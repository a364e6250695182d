"""Knobs: the hyperparameters a model exposes to the platform's search (Rafiki's contract)."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Mapping

POLICIES = ("EARLY_STOP", "QUICK_EVAL", "SKIP_TRAIN", "SHARE_PARAMS", "DOWNSCALE")


class BaseKnob(ABC):
    kind: str = ""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (what the platform stores and the advisor reads)."""

    @abstractmethod
    def validate(self, name: str, value: Any) -> None:
        """Raise ValueError if ``value`` is not a value this knob can take."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseKnob) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"{type(self).__name__}({args})"


class FixedKnob(BaseKnob):
    """A knob with one value: not searched."""

    kind = "fixed"

    def __init__(self, value: Any):
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "value": self.value}

    def validate(self, name: str, value: Any) -> None:
        if value != self.value:
            raise ValueError(f"knob {name!r} is fixed to {self.value!r}, got {value!r}")


class CategoricalKnob(BaseKnob):
    """One of a list of values (str, int, float or bool)."""

    kind = "categorical"

    def __init__(self, values: list[Any]):
        if not values:
            raise ValueError("CategoricalKnob needs at least one value")
        self.values = list(values)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "values": self.values}

    def validate(self, name: str, value: Any) -> None:
        if value not in self.values:
            raise ValueError(f"knob {name!r} must be one of {self.values!r}, got {value!r}")


class _RangeKnob(BaseKnob):
    def __init__(self, value_min: float, value_max: float, is_exp: bool = False):
        if value_min > value_max:
            raise ValueError(f"{type(self).__name__}: value_min {value_min} is above value_max {value_max}")
        if is_exp and value_min <= 0:
            raise ValueError(f"{type(self).__name__}: is_exp (log scale) needs value_min > 0")
        self.value_min = value_min
        self.value_max = value_max
        self.is_exp = is_exp

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "value_min": self.value_min, "value_max": self.value_max, "is_exp": self.is_exp}

    def validate(self, name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"knob {name!r} must be a number, got {value!r}")
        if not self.value_min <= value <= self.value_max:
            raise ValueError(f"knob {name!r} must be within [{self.value_min}, {self.value_max}], got {value!r}")


class IntegerKnob(_RangeKnob):
    """An integer in [value_min, value_max]; ``is_exp`` searches it on a log scale."""

    kind = "integer"

    def __init__(self, value_min: int, value_max: int, is_exp: bool = False):
        super().__init__(int(value_min), int(value_max), is_exp)

    def validate(self, name: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"knob {name!r} must be an integer, got {value!r}")
        super().validate(name, value)


class FloatKnob(_RangeKnob):
    """A float in [value_min, value_max]; ``is_exp`` searches it on a log scale (learning rates)."""

    kind = "float"

    def __init__(self, value_min: float, value_max: float, is_exp: bool = False):
        super().__init__(float(value_min), float(value_max), is_exp)


class PolicyKnob(BaseKnob):
    """A switch the platform turns on or off per trial: ``EARLY_STOP`` (train briefly) and
    ``QUICK_EVAL`` (evaluate on part of the validation set) let the advisor screen many
    configurations cheaply and give full trials only to promising ones."""

    kind = "policy"

    def __init__(self, policy: str):
        if policy not in POLICIES:
            raise ValueError(f"PolicyKnob policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "policy": self.policy}

    def validate(self, name: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise ValueError(f"policy knob {name!r} must be True or False, got {value!r}")


KnobConfig = Mapping[str, BaseKnob]
Knobs = dict[str, Any]

_KINDS = {cls.kind: cls for cls in (FixedKnob, CategoricalKnob, IntegerKnob, FloatKnob, PolicyKnob)}


def serialize_knob_config(config: KnobConfig) -> dict[str, dict[str, Any]]:
    return {name: knob.to_dict() for name, knob in config.items()}


def deserialize_knob_config(data: Mapping[str, Mapping[str, Any]]) -> dict[str, BaseKnob]:
    knobs: dict[str, BaseKnob] = {}
    for name, spec in data.items():
        spec = dict(spec)
        cls = _KINDS.get(spec.pop("type", None))
        if cls is None:
            raise ValueError(f"knob {name!r} has an unknown type")
        knobs[name] = cls(**spec)
    return knobs


def validate_knobs(config: KnobConfig, knobs: Mapping[str, Any]) -> None:
    """Every knob of ``config`` is present with a valid value, and nothing else is."""
    missing = sorted(set(config) - set(knobs))
    extra = sorted(set(knobs) - set(config))
    if missing or extra:
        raise ValueError(f"knobs do not match the knob config (missing: {missing}, unexpected: {extra})")
    for name, knob in config.items():
        knob.validate(name, knobs[name])
