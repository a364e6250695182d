"""The search space of a knob config, read from its JSON (the server never imports model code).

Parses and validates the JSON that ``kilele.model.knobs.serialize_knob_config`` produces,
canonicalises knob values (so a stored trial and a new proposal of the same configuration get
the same fingerprint), and does the space's arithmetic: its size when finite, uniform /
log-uniform sampling, and enumeration by index.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Optional, Union

POLICIES = ("EARLY_STOP", "QUICK_EVAL", "SKIP_TRAIN", "SHARE_PARAMS", "DOWNSCALE")
# The policies the advisor turns on for a cheap screening trial; the others are always off.
SCREENING_POLICIES = frozenset({"EARLY_STOP", "QUICK_EVAL"})

_ALLOWED_KEYS = {
    "fixed": ({"value"}, set()),
    "categorical": ({"values"}, set()),
    "integer": ({"value_min", "value_max"}, {"is_exp"}),
    "float": ({"value_min", "value_max"}, {"is_exp"}),
    "policy": ({"policy"}, set()),
}


def canonical_json(obj: Any) -> str:
    """One text per value: sorted keys, no spaces, floats by their shortest round-trip repr."""
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _jsonable(value: Any) -> Any:
    """Plain JSON types (DynamoDB may hand back Decimal; tuples become lists; -0.0 becomes 0.0)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value == 0.0:
        return 0.0
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    if not isinstance(value, (int, float, Decimal)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


@dataclass(frozen=True)
class Knob:
    name: str
    kind: str  # fixed | categorical | integer | float | policy
    value: Any = None  # fixed
    values: tuple = ()  # categorical, de-duplicated, in config order
    low: Union[int, float, None] = None
    high: Union[int, float, None] = None
    log: bool = False
    policy: Optional[str] = None

    @property
    def n_values(self) -> Optional[int]:
        """How many distinct values this knob can take (None: a continuum)."""
        if self.kind == "categorical":
            return len(self.values)
        if self.kind == "integer":
            return int(self.high) - int(self.low) + 1
        if self.kind == "float":
            return 1 if self.low == self.high else None
        return 1

    @property
    def searched(self) -> bool:
        """Whether the advisor chooses this knob's value (more than one possible value)."""
        return self.kind in ("categorical", "integer", "float") and self.n_values != 1

    def single_value(self) -> Any:
        if self.kind == "fixed":
            return _jsonable(self.value)
        if self.kind == "categorical":
            return self.values[0]
        if self.kind == "integer":
            return int(self.low)
        return float(self.low)

    def normalize(self, raw: Any) -> tuple[Any, bool]:
        """``(canonical value, valid)``: the value as the advisor would have proposed it, and
        whether it lies in this knob's domain (an invalid one keeps a JSON-able form)."""
        if self.kind == "fixed":
            return _jsonable(self.value), True  # one value: a record's copy adds nothing
        if self.kind == "categorical":
            index = self.index_of(raw)
            return (self.values[index], True) if index is not None else (_jsonable(raw), False)
        if not _is_number(raw):
            return _jsonable(raw), False
        if self.kind == "integer":
            number = Decimal(str(raw)) if not isinstance(raw, Decimal) else raw
            if number != number.to_integral_value():
                return _jsonable(raw), False
            value = int(number)
        else:
            value = float(raw) + 0.0  # -0.0 -> 0.0
        return value, self.low <= value <= self.high

    def index_of(self, raw: Any) -> Optional[int]:
        """Index of ``raw`` among a categorical knob's values (exact JSON match first, then ==)."""
        try:
            text = canonical_json(raw)
        except (TypeError, ValueError):
            return None
        for i, v in enumerate(self.values):
            if canonical_json(v) == text:
                return i
        for i, v in enumerate(self.values):
            if type(v) is not bool and type(raw) is not bool and _is_number(v) and _is_number(raw) and v == raw:
                return i
        return None

    def sample(self, rng: random.Random) -> Any:
        """Uniform, or log-uniform when ``is_exp`` (as Optuna's RandomSampler does)."""
        if self.kind == "categorical":
            return self.values[rng.randrange(len(self.values))]
        if self.kind == "integer":
            low, high = int(self.low), int(self.high)
            if not self.log:
                return rng.randint(low, high)
            x = math.exp(rng.uniform(math.log(low - 0.5), math.log(high + 0.5)))
            return min(high, max(low, int(round(x))))
        if self.log:
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            x = rng.uniform(self.low, self.high)
        return min(float(self.high), max(float(self.low), x))

    def value_at(self, index: int) -> Any:
        if self.kind == "categorical":
            return self.values[index]
        return int(self.low) + index


class SearchSpace:
    """A parsed knob config. ``knobs`` keeps the config's order; sampling and enumeration use
    the searched knobs in sorted name order, so results never depend on dict order."""

    def __init__(self, knobs: list[Knob]):
        self.knobs = knobs
        self.by_name = {k.name: k for k in knobs}
        self.policy_knobs = [k for k in knobs if k.kind == "policy"]
        self.value_knobs = [k for k in knobs if k.kind != "policy"]
        self.searched = sorted((k for k in knobs if k.searched), key=lambda k: k.name)
        self.has_screening = any(k.policy in SCREENING_POLICIES for k in self.policy_knobs)
        size: Optional[int] = 1
        for k in self.searched:
            n = k.n_values
            size = None if size is None or n is None else size * n
        self.size = size  # number of distinct configurations; None for a continuous space

    # --- values and fingerprints ---------------------------------------------------------

    def normalize(self, knobs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Canonical non-policy knob values of a trial, and whether all are in this space."""
        if not isinstance(knobs, Mapping):
            return {"__invalid__": canonical_json(repr(knobs))}, False
        out: dict[str, Any] = {}
        valid = True
        for k in self.value_knobs:
            if k.name not in knobs:
                out[k.name] = None
                valid = False
                continue
            out[k.name], ok = k.normalize(knobs[k.name])
            valid = valid and ok
        return out, valid

    @staticmethod
    def key(values: Mapping[str, Any]) -> str:
        """Identity of a configuration (non-policy knob values), independent of screening."""
        return canonical_json(values)

    @staticmethod
    def fingerprint_of(values: Mapping[str, Any], screening: bool) -> str:
        return hashlib.sha256(canonical_json({"knobs": values, "screening": bool(screening)}).encode()).hexdigest()

    def full_knobs(self, values: Mapping[str, Any], screening: bool) -> dict[str, Any]:
        """Every knob of the config in config order, policy knobs as True/False."""
        out: dict[str, Any] = {}
        for k in self.knobs:
            if k.kind == "policy":
                out[k.name] = bool(screening and k.policy in SCREENING_POLICIES)
            else:
                out[k.name] = values[k.name]
        return out

    def complete(self, searched_values: Mapping[str, Any]) -> dict[str, Any]:
        """Non-policy knob values: the searched ones given, the single-valued ones filled in."""
        return {k.name: (searched_values[k.name] if k.searched else k.single_value()) for k in self.value_knobs}

    # --- sampling and enumeration --------------------------------------------------------

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return self.complete({k.name: k.sample(rng) for k in self.searched})

    def point_at(self, index: int) -> dict[str, Any]:
        """The ``index``-th configuration of a finite space (mixed radix over searched knobs)."""
        assert self.size is not None and 0 <= index < self.size
        values = {}
        for k in reversed(self.searched):
            index, digit = divmod(index, k.n_values)
            values[k.name] = k.value_at(digit)
        return self.complete(values)


def parse_knob_config(knob_config_json: Union[str, bytes, Mapping[str, Any]]) -> SearchSpace:
    """Read and check a serialized knob config; ValueError says what is wrong."""
    if isinstance(knob_config_json, (str, bytes, bytearray)):
        try:
            data = json.loads(knob_config_json)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"invalid knob config: not valid JSON ({e})") from None
    else:
        data = knob_config_json
    if not isinstance(data, Mapping):
        raise ValueError(f"invalid knob config: expected a JSON object of knob name -> knob, got {type(data).__name__}")
    return SearchSpace([_parse_knob(name, spec) for name, spec in data.items()])


def _parse_knob(name: Any, spec: Any) -> Knob:
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid knob config: knob names must be non-empty strings, got {name!r}")

    def bad(message: str) -> ValueError:
        return ValueError(f"invalid knob config: knob {name!r}: {message}")

    if not isinstance(spec, Mapping):
        raise bad(f"expected an object with a 'type', got {type(spec).__name__}")
    kind = spec.get("type")
    if kind not in _ALLOWED_KEYS:
        raise bad(f"unknown type {kind!r} (expected one of {sorted(_ALLOWED_KEYS)})")
    required, optional = _ALLOWED_KEYS[kind]
    missing = sorted(required - set(spec))
    unexpected = sorted(set(spec) - required - optional - {"type"})
    if missing:
        raise bad(f"{kind} knob is missing {missing}")
    if unexpected:
        raise bad(f"{kind} knob has unexpected fields {unexpected}")

    if kind == "fixed":
        try:
            canonical_json(spec["value"])
        except (TypeError, ValueError):
            raise bad("fixed value must be JSON-able and finite") from None
        return Knob(name, kind, value=_jsonable(spec["value"]))
    if kind == "policy":
        if spec["policy"] not in POLICIES:
            raise bad(f"policy must be one of {list(POLICIES)}, got {spec['policy']!r}")
        return Knob(name, kind, policy=spec["policy"])
    if kind == "categorical":
        values = spec["values"]
        if not isinstance(values, (list, tuple)) or not values:
            raise bad("categorical values must be a non-empty list")
        unique: dict[str, Any] = {}
        for v in values:
            if v is not None and not isinstance(v, (str, bool, int, float, Decimal)):
                raise bad(f"categorical values must be strings, numbers, booleans or null, got {v!r}")
            if isinstance(v, (float, Decimal)) and not math.isfinite(float(v)):
                raise bad(f"categorical values must be finite, got {v!r}")
            unique.setdefault(canonical_json(v), _jsonable(v))
        return Knob(name, kind, values=tuple(unique.values()))

    # integer / float
    low, high, is_exp = spec["value_min"], spec["value_max"], spec.get("is_exp", False)
    if not _is_number(low) or not _is_number(high):
        raise bad(f"value_min and value_max must be finite numbers, got {low!r} and {high!r}")
    if not isinstance(is_exp, bool):
        raise bad(f"is_exp must be true or false, got {is_exp!r}")
    if kind == "integer":
        if Decimal(str(low)) != Decimal(str(low)).to_integral_value() or Decimal(str(high)) != Decimal(str(high)).to_integral_value():
            raise bad(f"integer bounds must be whole numbers, got {low!r} and {high!r}")
        low, high = int(Decimal(str(low))), int(Decimal(str(high)))
    else:
        low, high = float(low), float(high)
    if low > high:
        raise bad(f"value_min {low} is above value_max {high}")
    if is_exp and low <= 0:
        raise bad(f"is_exp (log scale) needs value_min > 0, got {low}")
    return Knob(name, kind, low=low, high=high, log=is_exp)
