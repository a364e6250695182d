"""The test run config (seed 002's shape), validated; errors name the key.

::

    {"run_name": "Titanic",
     "data_info": {"label_col": "Survived", "pred_col"?: …, "timestamp_col"?: …,
                   "ref_path": "ref.csv", "eval_path": "eval.parquet",
                   "categorical_features"?: […], "protected_features"?: […],
                   "features_not_in_model"?: […]},
     "model_info": {"path": "model.py"} | {"trial_id": …} | {"app": …, "app_version": -1},
     "model_task"?: "Binary Classification" | "Multi-class Classification" | "Regression",
     "tests_config"?: {"numeric_drift": {"thresholds": [0.1, 0.2, 0.6]},
                       "duplicate_rows": {"enabled": false},
                       "multivariate_drift": {"params": {"sample_rows": 5000}}},
     "random_seed"?: 42}

``tests_config[key]`` takes ``enabled``, ``thresholds`` (``[low, medium, high]``, ``null`` for a
level never reached, or ``{"low":…, …}``), ``impact_thresholds`` (prevalence-and-impact tests),
``params`` (``{name: value}``); any other key is read as a param name. An unknown test key or
param is an error naming it.
"""
from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from kilele_stress.context import TestSettings
from kilele_stress.core import TestSpec, Thresholds, registry

ModelTaskName = Literal["Binary Classification", "Multi-class Classification", "Regression"]
DEFAULT_SEED = 42


class ConfigError(ValueError):
    """A bad test run config; the message starts with the key at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataInfo(_Strict):
    label_col: str
    ref_path: str
    eval_path: str
    pred_col: Optional[str] = None
    timestamp_col: Optional[str] = None
    categorical_features: Optional[list[str]] = None
    protected_features: Optional[list[str]] = None
    features_not_in_model: Optional[list[str]] = None


class ModelInfo(_Strict):
    """Exactly one of: a model file; a Kilele trial; an app's served version."""
    path: Optional[str] = None
    trial_id: Optional[str] = None
    app: Optional[str] = None
    app_version: Optional[int] = None

    @model_validator(mode="after")
    def _one_source(self) -> "ModelInfo":
        given = [k for k in ("path", "trial_id", "app") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of path, trial_id, app (got {', '.join(given)})")
        if self.app_version is not None and self.app is None:
            raise ValueError("app_version goes with app")
        return self

    @property
    def is_empty(self) -> bool:
        return self.path is None and self.trial_id is None and self.app is None


class TestOverride(BaseModel):
    """``tests_config[key]``: what a run changes of one test's defaults."""
    __test__ = False
    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: bool = True
    thresholds: Optional[Any] = None
    impact_thresholds: Optional[Any] = None
    params: dict[str, Any] = {}

    def all_params(self) -> dict[str, Any]:
        return {**self.params, **(self.model_extra or {})}


class TestRunConfig(_Strict):
    """A validated test run config (see the module's docstring)."""
    __test__ = False

    run_name: str = "stress test"
    data_info: DataInfo
    model_info: ModelInfo = ModelInfo()
    model_task: Optional[ModelTaskName] = None
    tests_config: dict[str, TestOverride] = {}
    random_seed: int = DEFAULT_SEED
    # Continuous tests' settings (later issues); accepted so seed 002's configs validate.
    continuous_info: Optional[dict[str, Any]] = None

    @field_validator("tests_config")
    @classmethod
    def _known_tests(cls, value: dict[str, TestOverride]) -> dict[str, TestOverride]:
        known = registry()
        for key, override in value.items():
            if key not in known:
                raise ValueError(f"{key}: unknown test (known: {', '.join(sorted(known))})")
            try:
                settings_for(known[key], override)
            except ValueError as e:
                raise ValueError(f"{key}: {e}") from None
        return value

    def settings(self) -> dict[str, TestSettings]:
        """Every registered test's effective settings for this run."""
        return {key: settings_for(spec, self.tests_config.get(key)) for key, spec in registry().items()}


def settings_for(spec: TestSpec, override: Optional[TestOverride]) -> TestSettings:
    """``spec``'s defaults overridden by ``override``; ValueError naming a bad param/threshold."""
    if override is None:
        return TestSettings(True, spec.thresholds, spec.impact_thresholds, dict(spec.params))
    params = override.all_params()
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        known = ", ".join(sorted(spec.params)) or "none"
        raise ValueError(f"{unknown[0]}: unknown parameter (known: {known})")
    thresholds = spec.thresholds
    if override.thresholds is not None:
        thresholds = _thresholds("thresholds", override.thresholds, spec.thresholds.higher_is_worse)
    impact = spec.impact_thresholds
    if override.impact_thresholds is not None:
        if spec.impact_thresholds is None:
            raise ValueError("impact_thresholds: this test has no impact metric")
        impact = _thresholds("impact_thresholds", override.impact_thresholds, True)
    return TestSettings(override.enabled, thresholds, impact, {**spec.params, **params})


def _thresholds(name: str, value: Any, higher_is_worse: bool) -> Thresholds:
    try:
        return Thresholds.from_value(value, higher_is_worse)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: {e}") from None


def parse_config(value: Any) -> TestRunConfig:
    """A :class:`TestRunConfig` from a dict (or one already parsed); :class:`ConfigError`
    naming the first bad key, e.g. ``data_info.label_col: Field required``."""
    if isinstance(value, TestRunConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"the test run config must be an object, not {type(value).__name__}")
    try:
        return TestRunConfig.model_validate(value)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        # Our own validators say "<test>: <param>: what" — fold those names into the key path.
        while where.startswith("tests_config") and (m := re.match(r"^([A-Za-z_]\w*): (.*)$", message, re.S)):
            where, message = f"{where}.{m.group(1)}", m.group(2)
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{where}: {message}{more}") from None
