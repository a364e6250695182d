"""The engine's vocabulary: statuses, severities, the one severity rule, test cases, the registry.

Every test in the catalogue is graded by :func:`grade` (``STRESS-TESTS.md``, "Severity rule"):
a metric ``m`` against three ascending thresholds ``(low, medium, high)``::

    m < low           -> PASS / NONE
    low <= m < medium -> WARNING / LOW
    medium <= m < high-> FAIL / MEDIUM
    m >= high         -> FAIL / HIGH

Tests that look at several metrics (prevalence and impact) take the higher of the levels
(:func:`combine`). A test registers itself with :func:`register`; the engine
(:mod:`kilele_stress.run`) calls it with a :class:`~kilele_stress.context.Context` and collects
the :class:`TestCase` objects it returns.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

#: Fewer evaluation (or reference) rows than this: the test is skipped (STRESS-TESTS.md).
MIN_ROWS = 100
#: Fewer rows than this in a subset: subset tests skip it.
MIN_SUBSET_ROWS = 20


class Status(StrEnum):
    PASS = "PASS"
    WARNING = "WARNING"
    FAIL = "FAIL"
    SKIP = "SKIP"


class Severity(IntEnum):
    """Ordered, so ``max()`` is "the higher of the levels"; ``.name`` is what results show."""
    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Category(StrEnum):
    ABNORMAL_INPUTS = "Abnormal Inputs"
    TRANSFORMATIONS = "Transformations"
    DRIFT = "Drift"
    DATA_CLEANLINESS = "Data Cleanliness"
    MODEL_PERFORMANCE = "Model Performance"
    SUBSET_PERFORMANCE = "Subset Performance"
    BIAS_AND_FAIRNESS = "Bias & Fairness"
    ADVERSARIAL = "Adversarial"


#: What a test may need; a missing one makes the test SKIP with a reason.
REQUIREMENTS = frozenset({"labels", "model", "predictions", "protected"})

_STATUS_OF = {Severity.NONE: Status.PASS, Severity.LOW: Status.WARNING,
              Severity.MEDIUM: Status.FAIL, Severity.HIGH: Status.FAIL}


def status_of(severity: Severity) -> Status:
    """The status that goes with a severity (NONE→PASS, LOW→WARNING, MEDIUM/HIGH→FAIL)."""
    return _STATUS_OF[Severity(severity)]


@dataclass(frozen=True)
class Thresholds:
    """Three thresholds of one metric, from the least to the most severe.

    ``higher_is_worse=False`` mirrors the rule for metrics where small is bad (a parity ratio,
    a gain over a dummy model): ``m > low`` → NONE, ``m <= low`` → LOW, ``m <= medium`` →
    MEDIUM, ``m <= high`` → HIGH. A threshold of ``None`` is a level the metric never reaches
    ("—" in the catalogue). A threshold of exactly 0 on a higher-is-worse metric means "any":
    the level applies when ``m > 0`` (so a share of 0 stays PASS).
    """
    low: Optional[float]
    medium: Optional[float]
    high: Optional[float]
    higher_is_worse: bool = True

    def __post_init__(self) -> None:
        finite = [t for t in self.as_tuple() if t is not None]
        ordered = finite == sorted(finite, reverse=not self.higher_is_worse)
        if not ordered or any(math.isnan(t) for t in finite):
            direction = "ascending" if self.higher_is_worse else "descending"
            raise ValueError(f"thresholds must be {direction}: {list(self.as_tuple())}")

    def as_tuple(self) -> tuple[Optional[float], Optional[float], Optional[float]]:
        return (self.low, self.medium, self.high)

    def level(self, metric: float) -> Severity:
        """The severity of ``metric`` under these thresholds (NaN → NONE: nothing measured)."""
        if metric is None or (isinstance(metric, float) and math.isnan(metric)):
            return Severity.NONE
        reached = Severity.NONE
        for sev, t in zip((Severity.LOW, Severity.MEDIUM, Severity.HIGH), self.as_tuple()):
            if t is None:
                continue
            if self.higher_is_worse:
                hit = metric > 0 if t == 0 else metric >= t
            else:
                hit = metric <= t
            if hit:
                reached = sev
        return reached

    def score(self, metric: float) -> float:
        """Where ``metric`` sits between "fine" (0) and the most severe finite threshold (1)."""
        finite = [t for t in self.as_tuple() if t is not None]
        if not finite or metric is None or not np.isfinite(metric):
            return 0.0
        worst, first = finite[-1], finite[0]
        if self.higher_is_worse:
            value = 1.0 if worst <= 0 and metric > 0 else (metric / worst if worst > 0 else 0.0)
        else:
            span = first - worst
            value = (first - metric) / span if span > 0 else float(metric <= first)
        return float(min(1.0, max(0.0, value)))

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "medium": self.medium, "high": self.high, "higher_is_worse": self.higher_is_worse}

    @classmethod
    def from_value(cls, value: Any, higher_is_worse: bool = True) -> "Thresholds":
        """From ``[low, medium, high]`` or ``{"low":…, "medium":…, "high":…}`` (a config override)."""
        if isinstance(value, Thresholds):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"low", "medium", "high", "higher_is_worse"}
            if unknown:
                raise ValueError(f"unknown threshold names {sorted(unknown)} (use low, medium, high)")
            return cls(value.get("low"), value.get("medium"), value.get("high"),
                       bool(value.get("higher_is_worse", higher_is_worse)))
        values = list(value)
        if len(values) != 3:
            raise ValueError(f"thresholds are [low, medium, high], got {len(values)} values")
        return cls(*[None if v is None else float(v) for v in values], higher_is_worse=higher_is_worse)


def grade(metric: float, thresholds: Thresholds) -> tuple[Status, Severity]:
    """THE severity rule: ``(status, severity)`` of ``metric`` under ``thresholds``."""
    severity = thresholds.level(metric)
    return status_of(severity), severity


def combine(*severities: Severity) -> Severity:
    """Several graded metrics of one case (prevalence and impact): the higher of the levels."""
    return max((Severity(s) for s in severities), default=Severity.NONE)


def category_severity(cases: Iterable["TestCase"]) -> tuple[float, Severity]:
    """A category's severity: the mean of its (non-skipped) cases' levels, and the nearest level."""
    levels = [int(c.severity) for c in cases if c.status != Status.SKIP]
    if not levels:
        return 0.0, Severity.NONE
    mean = float(np.mean(levels))
    # Nearest level, halves rounding up (1.5 is MEDIUM): Python's round() would round to even.
    return mean, Severity(min(3, int(math.floor(mean + 0.5))))


#: A case's ``details`` travel with the results (Parquet, the report): keep them small.
MAX_DETAIL_ITEMS = 50
MAX_DETAIL_CHARS = 200


def cap_details(value: Any) -> Any:
    """``value`` made JSON-safe and small: lists cut to 50 items, strings to 200 characters."""
    if isinstance(value, Mapping):
        return {str(k): cap_details(v) for k, v in list(value.items())[:MAX_DETAIL_ITEMS]}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [cap_details(v) for v in list(value)[:MAX_DETAIL_ITEMS]]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), 6)
    if value is None:
        return None
    return str(value)[:MAX_DETAIL_CHARS]


@dataclass
class TestCase:
    """One test on one feature (or pair, or the whole table).

    ``metrics`` holds every number the test computed (they become ``metric:<name>`` columns);
    ``thresholds`` the ones it was graded against (``threshold:low|medium|high``) and
    ``extra_thresholds`` those of a second graded metric (impact → ``threshold:impact_low``…).
    ``reason`` says why a case was skipped or anything a reader must know (e.g. "prevalence only:
    no model and no predictions"). ``details`` is what a report plots (binned reference/evaluation
    distributions, examples), capped in size. ``affected_rows`` (positions in the evaluation data,
    not stored) lets the run count failing inputs.
    """
    __test__ = False  # not a pytest test class, whatever its name

    test_key: str
    test_name: str
    category: str
    features: list[str]
    status: Status
    severity: Severity
    metrics: dict[str, float] = field(default_factory=dict)
    thresholds: Optional[Thresholds] = None
    extra_thresholds: dict[str, Thresholds] = field(default_factory=dict)
    reason: str = ""
    importance_score: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    affected_rows: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        self.severity = Severity(self.severity) if not isinstance(self.severity, str) else Severity[self.severity]
        self.features = [str(f) for f in self.features]
        self.metrics = {k: float(v) if v is not None else float("nan") for k, v in self.metrics.items()}
        self.details = cap_details(self.details)

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict with everything but ``affected_rows`` (the stored form)."""
        return {
            "test_key": self.test_key, "test_name": self.test_name, "category": str(self.category),
            "features": self.features, "status": self.status.value, "severity": self.severity.name,
            "metrics": self.metrics, "reason": self.reason, "importance_score": self.importance_score,
            "thresholds": self.thresholds.to_dict() if self.thresholds else None,
            "extra_thresholds": {k: t.to_dict() for k, t in self.extra_thresholds.items()},
            "details": self.details,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "TestCase":
        def thr(d: Optional[Mapping[str, Any]]) -> Optional[Thresholds]:
            return Thresholds.from_value(d) if d else None
        details = record.get("details") or {}
        return cls(test_key=record["test_key"], test_name=record["test_name"], category=record["category"],
                   features=list(record["features"]), status=record["status"], severity=record["severity"],
                   metrics=dict(record.get("metrics") or {}), thresholds=thr(record.get("thresholds")),
                   extra_thresholds={k: thr(v) for k, v in (record.get("extra_thresholds") or {}).items()},
                   reason=record.get("reason") or "", importance_score=float(record.get("importance_score") or 0),
                   details=json.loads(details) if isinstance(details, str) else details)


@dataclass(frozen=True)
class TestSpec:
    """A registered test: what it is, what it needs and its defaults (overridable per run)."""
    __test__ = False

    key: str
    name: str
    category: Category
    fn: Callable[[Any], Iterable[TestCase]]
    requires: frozenset[str]
    thresholds: Thresholds
    impact_thresholds: Optional[Thresholds]
    params: Mapping[str, Any]
    min_rows: int
    description: str


REGISTRY: dict[str, TestSpec] = {}


def register(*, key: str, name: str, category: Category | str, thresholds: Thresholds | Sequence,
             requires: Iterable[str] = (), impact_thresholds: Thresholds | Sequence | None = None,
             params: Optional[Mapping[str, Any]] = None, min_rows: int = MIN_ROWS,
             higher_is_worse: bool = True) -> Callable:
    """Register a test function ``fn(ctx) -> Iterable[TestCase]`` under ``key``.

    ``requires`` ⊆ {"labels", "model", "predictions", "protected"}: a missing one makes the
    engine write one SKIP case with the reason instead of calling the test. ``thresholds`` are
    the defaults of the test's main metric; ``impact_thresholds`` those of the impact of a
    prevalence-and-impact test; ``params`` the defaults of the test's other knobs. All of them
    are overridable per run through ``tests_config[key]``. Fewer than ``min_rows`` rows → SKIP.
    """
    unknown = set(requires) - REQUIREMENTS
    if unknown:
        raise ValueError(f"test {key!r}: unknown requirements {sorted(unknown)} (known: {sorted(REQUIREMENTS)})")

    def decorator(fn: Callable) -> Callable:
        if key in REGISTRY and REGISTRY[key].fn is not fn:
            raise ValueError(f"test key {key!r} is registered twice")
        REGISTRY[key] = TestSpec(
            key=key, name=name, category=Category(category), fn=fn, requires=frozenset(requires),
            thresholds=Thresholds.from_value(thresholds, higher_is_worse),
            impact_thresholds=None if impact_thresholds is None else Thresholds.from_value(impact_thresholds),
            params=dict(params or {}), min_rows=min_rows, description=(fn.__doc__ or "").strip().split("\n")[0])
        return fn
    return decorator


def registry() -> dict[str, TestSpec]:
    """Every registered test, the built-in catalogue loaded first (in catalogue order)."""
    import kilele_stress.tests  # noqa: F401 (registers the built-in tests on import)
    return REGISTRY


# The Context lives in its own module (it is the biggest piece); importing it from here keeps
# ``from kilele_stress.core import Context`` working as documented.
from kilele_stress.context import Context, ModelError, Sampling  # noqa: E402

__all__ = ["Status", "Severity", "Category", "Thresholds", "grade", "combine", "category_severity", "status_of",
           "TestCase", "TestSpec", "register", "registry", "REGISTRY", "Context", "Sampling", "ModelError",
           "MIN_ROWS", "MIN_SUBSET_ROWS", "cap_details"]
