"""What a test sees: the data, the schema, the labels, the model and its predictions, its settings.

The engine builds one :class:`Context` per run and hands each test a shallow copy made by
:meth:`Context.for_test` (its own thresholds, params and a random generator seeded by the run's
seed and the test's key, so a test's sampling does not depend on which other tests ran). The
copies share the data, a cache (:meth:`Context.cached`) and the log of samplings.
"""
from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Hashable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from kilele_stress.data import ColumnType, ModelTask
from kilele_stress.model import ModelError, normalize_output

if TYPE_CHECKING:
    from kilele_stress.core import Severity, TestCase, TestSpec, Thresholds

#: Rows per call of the model (model-in-the-loop tests and the initial predictions).
DEFAULT_BATCH_SIZE = 20_000


@dataclass(frozen=True)
class Sampling:
    """One sampling a test did (results report every one of them)."""
    test_key: str
    reason: str
    from_rows: int
    to_rows: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"test_key": self.test_key, "reason": self.reason, "from_rows": self.from_rows,
                "to_rows": self.to_rows, "seed": self.seed}


@dataclass
class TestSettings:
    """A test's effective settings for one run: defaults overridden by ``tests_config[key]``."""
    __test__ = False

    enabled: bool
    thresholds: "Thresholds"
    impact_thresholds: Optional["Thresholds"]
    params: dict[str, Any] = field(default_factory=dict)


class Context:
    """The inputs of every test of a run. Attributes (read them, do not mutate the data):

    * ``ref``, ``eval``: reference and evaluation DataFrames, conformed to the reference's
      schema (positional index 0..n-1); ``eval_raw``: the evaluation data as read, which is
      also what the model is called with.
    * ``schema``: column → :class:`~kilele_stress.data.ColumnType`; ``features``: the feature
      columns present in both frames; ``numeric_features``, ``categorical_features`` (booleans
      included), ``text_features``.
    * ``label_col``, ``pred_col``, ``timestamp_col``; ``task`` (:class:`ModelTask`); ``classes``
      (sorted, classification only); ``y_ref``/``y_eval`` (class indices, -1 when missing, or
      floats for regression; None without labels).
    * ``model``: ``predict(df) -> np.ndarray`` or None; call it through :meth:`predict`
      (batches, normalised output, errors as :class:`ModelError`). ``ref_pred``/``eval_pred``:
      predictions of the whole frames (positive-class probability, one column per class, or the
      value), from ``pred_col`` or the model; ``model_error`` says why they are missing.
    * ``protected_features``, ``features_not_in_model``; ``type_violations``: column → bool mask
      of evaluation rows whose value did not fit the reference type.
    * Per test: ``spec``, ``settings``, ``thresholds``, ``impact_thresholds``, ``params``,
      ``rng`` (seeded ``numpy.random.Generator``), and :meth:`sample`, :meth:`case`,
      :meth:`skip`.
    """

    spec: Optional["TestSpec"] = None
    settings: Optional[TestSettings] = None
    thresholds: Optional["Thresholds"] = None
    impact_thresholds: Optional["Thresholds"] = None
    params: Mapping[str, Any] = {}

    def __init__(self, *, ref: pd.DataFrame, eval: pd.DataFrame, schema: Mapping[str, ColumnType],
                 task: ModelTask, label_col: Optional[str] = None, pred_col: Optional[str] = None,
                 timestamp_col: Optional[str] = None, classes: Optional[list] = None,
                 y_ref: Optional[np.ndarray] = None, y_eval: Optional[np.ndarray] = None,
                 model: Optional[Callable[[pd.DataFrame], np.ndarray]] = None,
                 ref_pred: Optional[np.ndarray] = None, eval_pred: Optional[np.ndarray] = None,
                 model_error: Optional[str] = None, eval_raw: Optional[pd.DataFrame] = None,
                 protected_features: Sequence[str] = (), features_not_in_model: Sequence[str] = (),
                 type_violations: Optional[Mapping[str, np.ndarray]] = None,
                 settings: Optional[Mapping[str, TestSettings]] = None, random_seed: int = 0,
                 batch_size: int = DEFAULT_BATCH_SIZE):
        self.ref, self.eval = ref, eval
        self.eval_raw = eval if eval_raw is None else eval_raw
        self.schema = dict(schema)
        self.task = ModelTask(task)
        self.label_col, self.pred_col, self.timestamp_col = label_col, pred_col, timestamp_col
        self.classes = classes
        self.y_ref, self.y_eval = y_ref, y_eval
        self.model = model
        self.ref_pred, self.eval_pred = ref_pred, eval_pred
        self.model_error = model_error
        self.protected_features = list(protected_features)
        self.features_not_in_model = list(features_not_in_model)
        self.type_violations = dict(type_violations or {})
        self.all_settings = dict(settings or {})
        self.random_seed = int(random_seed)
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(self.random_seed)
        self.features = [c for c in self.schema if c in eval.columns]
        self.samplings: list[Sampling] = []  # shared by every per-test copy
        self._cache: dict[Hashable, Any] = {}  # shared too

    # --- the columns by type -------------------------------------------------------------
    def features_of(self, *kinds: ColumnType) -> list[str]:
        return [c for c in self.features if self.schema[c] in kinds]

    @property
    def numeric_features(self) -> list[str]:
        return self.features_of(ColumnType.NUMERIC)

    @property
    def categorical_features(self) -> list[str]:
        return self.features_of(ColumnType.CATEGORICAL, ColumnType.BOOLEAN)

    @property
    def text_features(self) -> list[str]:
        return self.features_of(ColumnType.TEXT)

    @property
    def is_classification(self) -> bool:
        return self.task != ModelTask.REGRESSION

    # --- requirements ----------------------------------------------------------------------
    def has_labels(self) -> bool:
        return self.y_ref is not None and self.y_eval is not None and bool(np.any(self._known(self.y_eval)))

    def has_predictions(self) -> bool:
        return self.ref_pred is not None and self.eval_pred is not None

    def missing_requirement(self, requires: Sequence[str]) -> Optional[str]:
        """Why a test needing ``requires`` cannot run (None: it can)."""
        if "labels" in requires and not self.has_labels():
            return f"no labels: the evaluation data has no label column {self.label_col!r} (or no values in it)"
        if "model" in requires and self.model is None:
            return "no model: the run has predictions only (model_info is empty)"
        if "predictions" in requires and not self.has_predictions():
            if self.model_error:
                return f"no predictions: {self.model_error}"
            return "no predictions: neither a model nor a pred_col"
        if "protected" in requires and not self.protected_features:
            return "no protected features (data_info.protected_features is empty)"
        return None

    def _known(self, y: np.ndarray) -> np.ndarray:
        return y >= 0 if self.is_classification else ~np.isnan(y)

    # --- per test ---------------------------------------------------------------------------
    def for_test(self, spec: "TestSpec", settings: Optional[TestSettings] = None) -> "Context":
        """A copy for one test: its settings, and a generator seeded by (run seed, test key)."""
        c = copy.copy(self)
        c.spec = spec
        c.settings = settings or self.all_settings.get(spec.key) or TestSettings(
            True, spec.thresholds, spec.impact_thresholds, dict(spec.params))
        c.thresholds, c.impact_thresholds = c.settings.thresholds, c.settings.impact_thresholds
        c.params = {**spec.params, **c.settings.params}
        c.rng = np.random.default_rng([self.random_seed, zlib.crc32(spec.key.encode())])
        return c

    def settings_of(self, key: str) -> TestSettings:
        """Another test's effective settings (e.g. the drift share reads the drift thresholds)."""
        from kilele_stress.core import registry
        if key in self.all_settings:
            return self.all_settings[key]
        spec = registry()[key]
        return TestSettings(True, spec.thresholds, spec.impact_thresholds, dict(spec.params))

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per run (shared by every test: profiles, bins, per-row scores)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # --- sampling -------------------------------------------------------------------------
    def sample_positions(self, total: int, n: int, reason: str) -> Optional[np.ndarray]:
        """Sorted positions of ``n`` of ``total`` rows drawn with the test's generator and
        recorded; None when ``total <= n`` (nothing to sample, nothing recorded)."""
        if total <= n:
            return None
        positions = np.sort(self.rng.choice(total, size=n, replace=False))
        self.samplings.append(Sampling(self.spec.key if self.spec else "", reason, int(total), int(n),
                                       self.random_seed))
        return positions

    def sample(self, data: Union[pd.DataFrame, pd.Series, np.ndarray], n: int, reason: str):
        """At most ``n`` rows of ``data`` (seeded, recorded with ``reason`` when it samples)."""
        positions = self.sample_positions(len(data), n, reason)
        if positions is None:
            return data
        return data.iloc[positions] if hasattr(data, "iloc") else data[positions]

    # --- the model ------------------------------------------------------------------------
    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """The model's normalised predictions for ``df``, called in batches of ``batch_size``.

        Raises :class:`ModelError` (the engine turns it into a HIGH case) when the model raises
        or returns something of the wrong shape.
        """
        if self.model is None:
            raise ModelError("there is no model to call")
        n_classes = len(self.classes) if self.classes is not None else None
        parts = []
        for start in range(0, len(df), self.batch_size):
            batch = df.iloc[start:start + self.batch_size]
            try:
                raw = self.model(batch)
            except Exception as e:  # noqa: BLE001 (whatever the model raises is a finding)
                raise ModelError(f"the model raised {type(e).__name__}: {e}") from e
            parts.append(normalize_output(raw, self.task, len(batch), n_classes))
        if not parts:
            shape = (0, n_classes) if self.task == ModelTask.MULTICLASS else (0,)
            return np.empty(shape)
        return np.concatenate(parts, axis=0)

    def model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        """What the model is called with: ``frame`` (raw rows) without the label and prediction columns."""
        drop = [c for c in (self.label_col, self.pred_col) if c and c in frame.columns]
        return frame.drop(columns=drop) if drop else frame

    # --- building cases ---------------------------------------------------------------------
    def case(self, features: Sequence[str], metrics: Mapping[str, float],
             grade_on: Union[None, str, Mapping[str, Optional["Thresholds"]]] = None, *,
             reason: str = "", details: Optional[Mapping[str, Any]] = None, suppress: Optional[str] = None,
             importance: Optional[float] = None, affected: Optional[np.ndarray] = None) -> "TestCase":
        """A graded case of the current test.

        ``grade_on``: the metric graded against the test's thresholds (default: the first of
        ``metrics``), or ``{metric: thresholds or None (the test's)}`` for several metrics, of
        which the case takes the highest level; the first one's thresholds are the case's
        ``thresholds``, the others' go to ``extra_thresholds``. ``suppress``: a reason to PASS
        whatever the metrics say (e.g. the change is not statistically significant).
        ``affected``: evaluation rows the case flags (bool mask or positions).
        """
        from kilele_stress.core import Severity, TestCase, combine, status_of

        if grade_on is None:
            grade_on = next(iter(metrics))
        if isinstance(grade_on, str):
            grade_on = {grade_on: None}
        graded = {name: thr or (self.impact_thresholds if name == "impact" and self.impact_thresholds
                                else self.thresholds) for name, thr in grade_on.items()}
        levels = [t.level(metrics.get(name, float("nan"))) for name, t in graded.items()]
        severity = Severity.NONE if suppress else combine(*levels)
        names = list(graded)
        if importance is None:
            importance = 0.0 if suppress else max(graded[n].score(metrics.get(n, float("nan"))) for n in names)
        if suppress:
            reason = f"{reason}; {suppress}" if reason else suppress
        if affected is not None:
            affected = np.flatnonzero(affected) if affected.dtype == bool else np.asarray(affected)
        return TestCase(test_key=self.spec.key, test_name=self.spec.name, category=self.spec.category,
                        features=list(features), status=status_of(severity), severity=severity,
                        metrics=dict(metrics), thresholds=graded[names[0]],
                        extra_thresholds={n: graded[n] for n in names[1:]}, reason=reason,
                        importance_score=float(importance), details=dict(details or {}), affected_rows=affected)

    def skip(self, features: Sequence[str], reason: str) -> "TestCase":
        """A SKIP case (severity NONE) of the current test, with the reason."""
        from kilele_stress.core import Severity, Status, TestCase
        return TestCase(test_key=self.spec.key, test_name=self.spec.name, category=self.spec.category,
                        features=list(features), status=Status.SKIP, severity=Severity.NONE,
                        thresholds=self.thresholds, reason=reason)

    def fail(self, features: Sequence[str], reason: str, severity: Optional["Severity"] = None) -> "TestCase":
        """A FAIL case (HIGH unless told) of the current test: a model error, a broken test."""
        from kilele_stress.core import Severity, TestCase, status_of
        severity = Severity.HIGH if severity is None else severity
        return TestCase(test_key=self.spec.key, test_name=self.spec.name, category=self.spec.category,
                        features=list(features), status=status_of(severity), severity=severity,
                        thresholds=self.thresholds, reason=reason, importance_score=1.0)
