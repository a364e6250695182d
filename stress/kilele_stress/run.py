"""The engine: a test run config (and optionally a model) in, a :class:`StressTestResult` out.

::

    from kilele_stress import run_stress_test
    result = run_stress_test({"run_name": "loans", "data_info": {"label_col": "y",
                              "ref_path": "ref.csv", "eval_path": "eval.parquet"},
                              "model_info": {"path": "model.py"}})
    result.test_cases_df(); result.test_run_df(); result.to_parquet("out/")

No test can crash a run: a test that raises becomes one FAIL/HIGH case saying so, a model that
raises becomes HIGH cases of the tests that needed it. Only what makes the whole run meaningless
raises: a bad config (:class:`~kilele_stress.config.ConfigError`), unreadable data
(:class:`~kilele_stress.data.DataError`), a model file that does not load
(:class:`~kilele_stress.model.ModelError`).
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from kilele_stress.config import ConfigError, TestRunConfig, parse_config
from kilele_stress.context import DEFAULT_BATCH_SIZE, Context, TestSettings
from kilele_stress.core import Category, Severity, Status, TestCase, TestSpec, registry
from kilele_stress.data import (DataError, ModelTask, class_labels, conform, encode_classes, infer_schema,
                                infer_task, read_table)
from kilele_stress.model import ModelError, as_model, load_model_file, normalize_output
from kilele_stress.results import StressTestResult, model_performance

log = logging.getLogger("kilele_stress")

TimeBin = tuple[Any, Any]


def run_stress_test(config: Any, model: Any = None, *, ref: Optional[pd.DataFrame] = None,
                    eval: Optional[pd.DataFrame] = None, tests: Optional[Sequence[str]] = None,
                    categories: Optional[Iterable[str]] = None, time_bin: Optional[TimeBin] = None,
                    test_run_id: Optional[str] = None, project_id: Optional[str] = None,
                    batch_size: int = DEFAULT_BATCH_SIZE,
                    progress: Optional[Callable[[str], None]] = None) -> StressTestResult:
    """Run every enabled test of the catalogue (or ``tests``/``categories``) on the config's data.

    * ``config``: a test run config dict (or :class:`TestRunConfig`).
    * ``model``: the model under test, overriding ``model_info``: a ``predict(df) -> ndarray``
      callable or anything with ``predict_df``/``predict_dict`` (the platform passes its
      sandboxed model process this way). None and ``model_info.path`` set: that file is loaded.
    * ``ref``/``eval``: DataFrames used instead of reading ``ref_path``/``eval_path``.
    * ``time_bin=(start, end)``: only evaluation rows with ``start <= timestamp < end``
      (``data_info.timestamp_col``); results carry ``time_bin_start``/``time_bin_end``.
    * ``progress``: called with one line per test (the CLI prints them; the worker logs them).
    """
    started = time.perf_counter()
    upload_time = datetime.now(timezone.utc)
    cfg = parse_config(config)
    di = cfg.data_info
    ref_raw = _prepared(ref if ref is not None else read_table(di.ref_path), "ref_path")
    eval_raw = _prepared(eval if eval is not None else read_table(di.eval_path), "eval_path")
    _check_columns(cfg, ref_raw, eval_raw, time_bin)
    if time_bin is not None:
        eval_raw = _in_time_bin(eval_raw, di.timestamp_col, time_bin)

    special = [c for c in (di.label_col, di.pred_col, di.timestamp_col) if c]
    seen: dict = {}
    schema = infer_schema(ref_raw, exclude=special, categorical_features=di.categorical_features, distinct_cache=seen)
    ref_df, _ = conform(ref_raw, schema)
    eval_df, violations = conform(eval_raw, schema)
    task = ModelTask(cfg.model_task) if cfg.model_task else infer_task(ref_raw[di.label_col])
    classes = class_labels(ref_raw[di.label_col]) if task != ModelTask.REGRESSION else None
    if task == ModelTask.BINARY and classes is not None and len(classes) > 2:
        raise ConfigError(f"model_task: Binary Classification, but the label has {len(classes)} classes")
    y_ref = _labels(ref_raw, di.label_col, task, classes)
    y_eval = _labels(eval_raw, di.label_col, task, classes) if di.label_col in eval_raw.columns else None

    predict = _resolve_model(cfg, model)
    ctx = Context(ref=ref_df, eval=eval_df, eval_raw=eval_raw, schema=schema, task=task, label_col=di.label_col,
                  pred_col=di.pred_col, timestamp_col=di.timestamp_col, classes=classes, y_ref=y_ref,
                  y_eval=y_eval, model=predict, protected_features=di.protected_features or (),
                  features_not_in_model=di.features_not_in_model or (), type_violations=violations,
                  settings=cfg.settings(), random_seed=cfg.random_seed, batch_size=batch_size)
    for col, found in seen.items():  # reuse the distinct values schema inference computed
        if ref_df[col].dtype == ref_raw[col].dtype:
            ctx.cached(("distinct", "ref", col), lambda found=found: found)
    _predictions(ctx, ref_raw, eval_raw)

    cases, timings = [], {}
    for spec in _selected(cfg.settings(), tests, categories):
        t0 = time.perf_counter()
        tctx = ctx.for_test(spec, ctx.all_settings[spec.key])
        before = len(ctx.samplings)
        found = run_one(tctx)
        sampled = [s.to_dict() for s in ctx.samplings[before:]]
        for case in found:
            if sampled:
                case.details["sampling"] = sampled
        cases += found
        timings[spec.key] = round((time.perf_counter() - t0) * 1000, 1)
        if progress:
            worst = max((c.severity for c in found), default=Severity.NONE)
            progress(f"{spec.name}: {len(found)} case(s), worst {worst.name} ({timings[spec.key]:.0f} ms)")

    return StressTestResult(
        test_run_id=test_run_id or uuid.uuid4().hex, run_name=cfg.run_name, project_id=project_id,
        model_task=task.value, testing_type="Continuous Testing" if time_bin else "Stress Testing",
        upload_time=upload_time, duration_millis=int((time.perf_counter() - started) * 1000),
        num_inputs=len(eval_df), num_failing_inputs=_failing_inputs(cases),
        cases=cases, samplings=[s.to_dict() for s in ctx.samplings], timings=timings,
        model_performance=model_performance(ctx), time_bin=time_bin,
        config=cfg.model_dump(mode="json"), schema={c: t.value for c, t in schema.items()},
        model_error=ctx.model_error, random_seed=cfg.random_seed)


def run_one(ctx: Context) -> list[TestCase]:
    """One test (``ctx`` made by ``for_test``): its cases, or the SKIP/FAIL case that says why not."""
    spec: TestSpec = ctx.spec
    missing = ctx.missing_requirement(sorted(spec.requires))
    if missing:
        if ctx.model_error and spec.requires & {"model", "predictions"}:
            return [ctx.fail([], f"the model failed: {ctx.model_error}")]
        return [ctx.skip([], missing)]
    rows = min(len(ctx.ref), len(ctx.eval))
    if rows < spec.min_rows:
        return [ctx.skip([], f"fewer than {spec.min_rows} rows (reference {len(ctx.ref)}, evaluation {len(ctx.eval)})")]
    cases: list[TestCase] = []
    try:
        for case in spec.fn(ctx):  # keep what a test yielded before it failed
            cases.append(case)
    except ModelError as e:
        cases.append(ctx.fail([], f"the model failed during the test: {e}"))
    except Exception as e:  # noqa: BLE001 (a broken test is a result, never a crashed run)
        log.exception("test %s raised", spec.key)
        cases.append(ctx.fail([], f"the test itself raised {type(e).__name__}: {e} (an engine bug; see the logs)"))
    return cases or [ctx.skip([], "nothing to test in this data")]


def _selected(settings: dict[str, TestSettings], tests: Optional[Sequence[str]],
              categories: Optional[Iterable[str]]) -> list[TestSpec]:
    specs = registry()
    if tests is not None:
        unknown = [t for t in tests if t not in specs]
        if unknown:
            raise ConfigError(f"tests: unknown test {unknown[0]!r} (known: {', '.join(specs)})")
    wanted = None
    if categories is not None:
        try:
            wanted = {Category(c) for c in categories}
        except ValueError as e:
            raise ConfigError(f"categories: {e} (known: {', '.join(c.value for c in Category)})") from None
    return [s for s in specs.values() if settings[s.key].enabled and (tests is None or s.key in tests)
            and (wanted is None or s.category in wanted)]


def _prepared(df: pd.DataFrame, key: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"data_info.{key}: expected a DataFrame, got {type(df).__name__}")
    # Tests address rows by position; a string column name keeps results uniform.
    out = df.reset_index(drop=True)
    out.columns = [str(c) for c in out.columns]
    return out


def _check_columns(cfg: TestRunConfig, ref: pd.DataFrame, ev: pd.DataFrame, time_bin: Optional[TimeBin]) -> None:
    di = cfg.data_info
    if di.label_col not in ref.columns:
        raise DataError(f"data_info.label_col: the reference data has no column {di.label_col!r}")
    if di.pred_col:
        for name, frame in (("reference", ref), ("evaluation", ev)):
            if di.pred_col not in frame.columns:
                raise DataError(f"data_info.pred_col: the {name} data has no column {di.pred_col!r}")
    if time_bin is not None and not di.timestamp_col:
        raise ConfigError("data_info.timestamp_col: a time bin needs the timestamp column")
    if di.timestamp_col and di.timestamp_col not in ev.columns:
        raise DataError(f"data_info.timestamp_col: the evaluation data has no column {di.timestamp_col!r}")
    for key in ("categorical_features", "protected_features", "features_not_in_model"):
        missing = [c for c in getattr(di, key) or [] if c not in ref.columns]
        if missing:
            raise DataError(f"data_info.{key}: the reference data has no column(s) {missing}")


def _in_time_bin(df: pd.DataFrame, col: str, time_bin: TimeBin) -> pd.DataFrame:
    start, end = (pd.Timestamp(t) for t in time_bin)
    stamps = pd.to_datetime(df[col], errors="coerce", utc=start.tzinfo is not None)
    return df[(stamps >= start) & (stamps < end)].reset_index(drop=True)


def _labels(df: pd.DataFrame, col: str, task: ModelTask, classes: Optional[list]) -> np.ndarray:
    if task == ModelTask.REGRESSION:
        values = pd.to_numeric(df[col], errors="coerce")
        return values.to_numpy(dtype=float, na_value=np.nan)
    return encode_classes(df[col], classes)


def _resolve_model(cfg: TestRunConfig, model: Any) -> Optional[Callable[[pd.DataFrame], np.ndarray]]:
    if model is not None:
        return as_model(model)
    info = cfg.model_info
    if info.path:
        return load_model_file(info.path)
    if info.trial_id or info.app:
        key = "trial_id" if info.trial_id else "app"
        raise ConfigError(f"model_info.{key}: the platform resolves it to a model; the engine on its own "
                          "needs model_info.path or model=")
    if not cfg.data_info.pred_col:
        log.info("no model and no pred_col: tests that need predictions will SKIP")
    return None


def _predictions(ctx: Context, ref_raw: pd.DataFrame, eval_raw: pd.DataFrame) -> None:
    """Fill ``ctx.ref_pred``/``eval_pred`` from ``pred_col`` or by calling the model once per frame."""
    n_classes = len(ctx.classes) if ctx.classes is not None else None
    if ctx.pred_col:
        try:
            ctx.ref_pred, ctx.eval_pred = (_from_column(f[ctx.pred_col], ctx, n_classes) for f in (ref_raw, eval_raw))
        except ModelError as e:
            raise DataError(f"data_info.pred_col: {e}") from None
        return
    if ctx.model is None:
        return
    for which, frame in (("reference", ref_raw), ("evaluation", eval_raw)):
        try:
            pred = ctx.predict(ctx.model_input(frame))
        except ModelError as e:
            ctx.model_error = f"{e} (on the {which} data)"
            ctx.ref_pred = ctx.eval_pred = None
            return
        setattr(ctx, "ref_pred" if which == "reference" else "eval_pred", pred)


def _from_column(values: pd.Series, ctx: Context, n_classes: Optional[int]) -> np.ndarray:
    """Predictions stored in a column: probabilities/values, or class labels (→ one-hot)."""
    if ctx.task == ModelTask.MULTICLASS:
        first = values.dropna().iloc[0] if values.notna().any() else None
        if isinstance(first, (list, tuple, np.ndarray)):
            return normalize_output(np.stack(values.to_numpy()), ctx.task, len(values), n_classes)
        codes = encode_classes(values, ctx.classes)
        out = np.zeros((len(values), n_classes))
        out[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1.0
        out[codes < 0] = np.nan
        return out
    if ctx.task == ModelTask.BINARY and not pd.api.types.is_numeric_dtype(values.dtype):
        codes = encode_classes(values, ctx.classes).astype(float)
        codes[codes < 0] = np.nan
        return codes
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return normalize_output(numeric, ctx.task, len(values), n_classes)


def _failing_inputs(cases: list[TestCase]) -> int:
    """Evaluation rows flagged by an abnormal-input case that did not pass."""
    rows = [c.affected_rows for c in cases if c.category == Category.ABNORMAL_INPUTS
            and c.status in (Status.WARNING, Status.FAIL) and c.affected_rows is not None]
    return int(len(np.unique(np.concatenate(rows)))) if rows else 0
