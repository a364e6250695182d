"""Continuous tests: the evaluation data cut into time bins, each bin tested against a reference.

::

    from kilele_stress.continuous import run_continuous_test
    result = run_continuous_test({"run_name": "loans", "data_info": {"label_col": "y",
                                  "ref_path": "ref.csv", "eval_path": "eval.csv"},
                                  "model_info": {"path": "model.py"},
                                  "continuous_info": {"timestamp_col": "ts", "bin_size": "day"}})
    result.test_cases_df()   # the stress-test columns plus time_bin_start, time_bin_end
    result.history           # every bin's rows so far: give it back as history= next time

Per bin the continuous-test categories of STRESS-TESTS.md run: Abnormal Inputs, Drift, Model
Performance (when the evaluation data has labels) and Subset Performance Degradation.

* **Bins** are ``[k·size, (k+1)·size)`` seconds since the Unix epoch in UTC (``"hour"`` = 3600,
  ``"day"`` = 86400), so the same row always falls in the same bin, whatever else arrived with it.
* **Incremental runs**: ``history`` maps each bin already tested to its rows. A new batch's rows
  of such a bin are merged with them (:func:`merge_rows`: a row already there is not added again),
  and only the bins the new batch touches are tested again.
* **Reference**: ``continuous_info.reference`` is ``"fixed"`` (the reference data, the default)
  or ``{"rolling_bins": N}``: the rows of the N bins before the one under test (the fixed
  reference while those hold fewer than ``MIN_ROWS`` rows, e.g. for the first bins).
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kilele_stress.config import ConfigError, TestRunConfig, parse_config
from kilele_stress.core import MIN_ROWS, Category, Severity, Status, registry
from kilele_stress.data import DataError, read_table
from kilele_stress.results import StressTestResult

TimeBin = tuple[pd.Timestamp, pd.Timestamp]
#: The bin sizes a continuous test takes (seed 002: hourly and daily).
BIN_SIZES = {"hour": 3600, "day": 86400}
#: The categories a continuous test runs per bin (STRESS-TESTS.md, "Default categories").
CONTINUOUS_CATEGORIES = (Category.ABNORMAL_INPUTS, Category.DRIFT, Category.MODEL_PERFORMANCE)
#: ... and of Subset Performance, only the degradation test (reference → evaluation per subset).
CONTINUOUS_EXTRA_TESTS = ("subset_performance_degradation",)


def continuous_test_keys() -> list[str]:
    """The registered tests a continuous test runs on each bin, in catalogue order."""
    return [s.key for s in registry().values()
            if s.category in CONTINUOUS_CATEGORIES or s.key in CONTINUOUS_EXTRA_TESTS]


def bin_seconds(bin_size: Union[str, int]) -> int:
    """3600 or 86400 from ``"hour"``/``"day"`` or those numbers; ConfigError otherwise."""
    if isinstance(bin_size, str) and bin_size in BIN_SIZES:
        return BIN_SIZES[bin_size]
    if isinstance(bin_size, int) and not isinstance(bin_size, bool) and bin_size in BIN_SIZES.values():
        return bin_size
    raise ConfigError(f"continuous_info.bin_size: {bin_size!r} is not one of 'hour', 'day' (3600, 86400 seconds)")


class ContinuousInfo(BaseModel):
    """``continuous_info`` of a test run config."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp_col: str = Field(min_length=1)
    bin_size: Union[str, int] = "day"
    reference: Union[str, dict[str, int]] = "fixed"

    @field_validator("bin_size")
    @classmethod
    def _size(cls, value: Union[str, int]) -> Union[str, int]:
        try:
            bin_seconds(value)
        except ConfigError as e:
            raise ValueError(str(e).split(": ", 1)[1]) from None
        return value

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: Union[str, dict[str, int]]) -> Union[str, dict[str, int]]:
        if value == "fixed":
            return value
        if isinstance(value, dict) and set(value) == {"rolling_bins"} and isinstance(value["rolling_bins"], int) \
                and 1 <= value["rolling_bins"] <= 10_000:
            return value
        raise ValueError('"fixed" or {"rolling_bins": N} with 1 <= N <= 10000')

    @property
    def seconds(self) -> int:
        return bin_seconds(self.bin_size)

    @property
    def rolling_bins(self) -> Optional[int]:
        return self.reference["rolling_bins"] if isinstance(self.reference, dict) else None


def parse_continuous_info(value: Any, timestamp_col: Optional[str] = None) -> ContinuousInfo:
    """``continuous_info`` validated (``timestamp_col`` defaults to ``data_info.timestamp_col``);
    ConfigError naming the key."""
    if not isinstance(value, Mapping):
        raise ConfigError("continuous_info: an object with timestamp_col and bin_size is required")
    value = dict(value)
    if timestamp_col and "timestamp_col" not in value:
        value["timestamp_col"] = timestamp_col
    try:
        return ContinuousInfo.model_validate(value)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"continuous_info.{where}: {'unknown key' if first['type'] == 'extra_forbidden' else message}"
                          ) from None


# --- binning and merging (pure) -------------------------------------------------------------

def timestamps(values: pd.Series, column: str) -> pd.Series:
    """``values`` as UTC timestamps (naive ones are read as UTC; numbers as epoch seconds);
    DataError naming the column and a bad value if any cannot be read."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        stamps = pd.to_datetime(values, unit="s", utc=True, errors="coerce")
    else:
        stamps = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = stamps.isna()
    if bad.any():
        example = values[bad].iloc[0]
        raise DataError(f"continuous_info.timestamp_col: {int(bad.sum())} value(s) of column {column!r} are not "
                        f"timestamps (e.g. {example!r})")
    return stamps


def bin_starts(stamps: pd.Series, seconds: int) -> np.ndarray:
    """Each timestamp's bin start, in epoch seconds (bins are aligned to the epoch, in UTC)."""
    epoch = ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype="int64")
    return np.floor_divide(epoch, seconds) * seconds


def time_bin(start_epoch: int, seconds: int) -> TimeBin:
    start = pd.Timestamp(int(start_epoch), unit="s", tz="UTC")
    return start, start + pd.Timedelta(seconds=seconds)


def split_bins(df: pd.DataFrame, timestamp_col: str, seconds: int) -> dict[TimeBin, pd.DataFrame]:
    """``df``'s rows by time bin, oldest bin first (each frame keeps ``df``'s columns and order)."""
    if timestamp_col not in df.columns:
        raise DataError(f"continuous_info.timestamp_col: the evaluation data has no column {timestamp_col!r}")
    if df.empty:
        return {}
    starts = bin_starts(timestamps(df[timestamp_col], timestamp_col), seconds)
    return {time_bin(s, seconds): df[starts == s].reset_index(drop=True) for s in np.unique(starts)}


def _row_hashes(df: pd.DataFrame) -> np.ndarray:
    # Text of every value, so a row read back from Parquet equals the same row read from CSV.
    return pd.util.hash_pandas_object(df.astype("string").fillna("<NA>"), index=False).to_numpy()


def merge_rows(old: Optional[pd.DataFrame], new: pd.DataFrame) -> pd.DataFrame:
    """A bin's rows after ``new`` arrived: ``old`` plus the rows of ``new`` that ``old`` does not
    already hold (a row delivered twice is counted once). Rows repeated within one batch are
    kept: they are separate inputs the model saw."""
    if old is None or old.empty:
        return new.reset_index(drop=True)
    missing = [c for c in old.columns if c not in new.columns] + [c for c in new.columns if c not in old.columns]
    if missing:
        raise DataError(f"eval_path: the new data's columns differ from the bin's earlier rows' (e.g. {missing[0]!r})")
    new = new[list(old.columns)]
    seen = set(_row_hashes(old).tolist())
    fresh = np.array([h not in seen for h in _row_hashes(new)], dtype=bool)
    return pd.concat([old, new[fresh]], ignore_index=True)


def rolling_reference(bin_: TimeBin, bins: Mapping[TimeBin, pd.DataFrame], n: int,
                      fixed: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The reference of ``bin_`` under a rolling window of ``n`` bins: the rows of the (at most)
    ``n`` bins before it, or ``fixed`` while they hold fewer than ``MIN_ROWS`` rows. Also says
    which it used."""
    before = sorted(b for b in bins if b[0] < bin_[0])[-n:]
    if before:
        rows = pd.concat([bins[b] for b in before], ignore_index=True)
        if len(rows) >= MIN_ROWS:
            return rows, f"rolling: {len(before)} bin(s) from {before[0][0].isoformat()} ({len(rows)} rows)"
    return fixed, "fixed reference (the rolling window holds too few rows)"


# --- the run -----------------------------------------------------------------------------------

@dataclass
class ContinuousTestResult:
    """A continuous test: one :class:`StressTestResult` per bin tested (``time_bin`` set), and
    ``history``, every bin's rows after this run (tested now or before)."""
    test_run_id: str
    run_name: str
    bin_seconds: int
    timestamp_col: str
    bins: list[StressTestResult]
    history: dict[TimeBin, pd.DataFrame] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)

    def test_cases_df(self, include_details: bool = False) -> pd.DataFrame:
        """The test cases of every bin tested, with ``time_bin_start``/``time_bin_end``."""
        frames = [b.test_cases_df(include_details) for b in self.bins]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["time_bin_start",
                                                                                          "time_bin_end"])

    def test_run_df(self) -> pd.DataFrame:
        """One summary row per bin tested (a stress test's columns, with the bin)."""
        frames = [b.test_run_df() for b in self.bins]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def history_df(self) -> pd.DataFrame:
        """Every bin's rows, oldest bin first (what to store for the next incremental run)."""
        frames = [self.history[b] for b in sorted(self.history)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def bin_summaries(self) -> list[dict[str, Any]]:
        """Per bin tested, the numbers monitors read: severity levels (the run's, each category's
        mean and worst case's, 0–3),
        status counts, rows, the model's evaluation metrics and the worst graded metric per test."""
        out = []
        for b in self.bins:
            metrics: dict[str, float] = {"severity": float(int(b.severity)), "num_inputs": float(b.num_inputs),
                                         "num_failing_inputs": float(b.num_failing_inputs)}
            for cat, (mean, level) in b.category_severities().items():
                metrics[f"category_severity:{cat}"] = float(int(level))
            # A category's mean level hides one badly drifted feature among many fine ones: the
            # worst case's level is what an alert on "any feature drifted" watches.
            for c in b.cases:
                key = f"category_worst:{c.category}"
                metrics[key] = max(metrics.get(key, 0.0), float(int(c.severity)))
            counts = b.status_counts()
            metrics.update({f"status_count:{k}": float(v) for k, v in counts.items()})
            for name, value in (b.model_performance.get("evaluation") or {}).items():
                metrics[f"model_performance:{name}"] = value
            for key, (value, _) in worst_metric_by_test(b).items():
                metrics[f"test:{key}"] = value
            out.append({"time_bin_start": b.time_bin[0].isoformat(), "time_bin_end": b.time_bin[1].isoformat(),
                        "severity": b.severity.name, "status_counts": counts,
                        "metrics": {k: (None if not math.isfinite(v) else round(v, 6)) for k, v in metrics.items()}})
        return out

    def summary(self) -> str:
        lines = [f"{self.run_name}: continuous test of {len(self.bins)} bin(s) of {self.bin_seconds} s "
                 f"({len(self.history)} bin(s) known)"]
        for b in self.bins:
            c = b.status_counts()
            lines.append(f"  {b.time_bin[0].isoformat()}  {b.num_inputs:>7} rows  {b.severity.name:<6} "
                         f"fail {c['fail']}, warning {c['warning']}, pass {c['pass']}, skip {c['skip']}")
        return "\n".join(lines)


def worst_metric_by_test(result: StressTestResult) -> dict[str, tuple[float, Any]]:
    """Per test key of a bin: its cases' worst graded metric (the first metric a case lists, the
    one its thresholds grade) and those thresholds (skipped cases left out)."""
    out: dict[str, tuple[float, Any]] = {}
    for c in result.cases:
        if c.status == Status.SKIP or not c.metrics or c.thresholds is None:
            continue
        value = next(iter(c.metrics.values()))
        if not math.isfinite(value):
            continue
        worse = (lambda a, b: a > b) if c.thresholds.higher_is_worse else (lambda a, b: a < b)
        if c.test_key not in out or worse(value, out[c.test_key][0]):
            out[c.test_key] = (value, c.thresholds)
    return out


def run_continuous_test(config: Any, model: Any = None, *, ref: Optional[pd.DataFrame] = None,
                        eval: Optional[pd.DataFrame] = None,
                        history: Optional[Mapping[TimeBin, pd.DataFrame]] = None,
                        test_run_id: Optional[str] = None, project_id: Optional[str] = None,
                        progress: Optional[Callable[[str], None]] = None) -> ContinuousTestResult:
    """Test each time bin of the evaluation data (see the module's docstring).

    ``config``: a test run config with ``continuous_info`` (``timestamp_col`` may instead be
    ``data_info.timestamp_col``). ``history``: the rows of bins tested before (from
    :attr:`ContinuousTestResult.history` or :func:`history_bins`). ``model``, ``ref``,
    ``eval``: as for :func:`~kilele_stress.run.run_stress_test`."""
    from kilele_stress.run import run_stress_test

    cfg: TestRunConfig = parse_config(config)
    info = parse_continuous_info(cfg.continuous_info, cfg.data_info.timestamp_col)
    seconds = info.seconds
    eval_df = eval if eval is not None else read_table(cfg.data_info.eval_path)
    ref_df = ref if ref is not None else read_table(cfg.data_info.ref_path)
    incoming = split_bins(eval_df, info.timestamp_col, seconds)
    if not incoming:
        raise DataError("data_info.eval_path: the evaluation data has no rows")
    bins = {b: rows for b, rows in (history or {}).items()}
    for b, rows in incoming.items():
        bins[b] = merge_rows(bins.get(b), rows)
    # The engine's own config: the timestamp column is known to it, so it is not tested as a feature.
    engine_config = cfg.model_dump(mode="json")
    engine_config["data_info"]["timestamp_col"] = info.timestamp_col
    keys = continuous_test_keys()
    run_id = test_run_id or uuid.uuid4().hex
    results, references = [], {}
    for b in sorted(incoming):
        reference, used = (ref_df, "fixed reference") if info.rolling_bins is None else \
            rolling_reference(b, bins, info.rolling_bins, ref_df)
        references[b[0].isoformat()] = used
        if progress:
            progress(f"bin {b[0].isoformat()} → {b[1].isoformat()}: {len(bins[b])} rows ({used})")
        # The bin's rows are already selected: the engine's own time_bin filter would parse the
        # timestamps again (and differently for epoch numbers), so the bin is set on the result.
        result = run_stress_test(engine_config, model, ref=reference, eval=bins[b], tests=keys,
                                 test_run_id=run_id, project_id=project_id,
                                 progress=(lambda line: progress(f"  {line}")) if progress else None)
        result.time_bin, result.testing_type = b, "Continuous Testing"
        results.append(result)
    return ContinuousTestResult(test_run_id=run_id, run_name=cfg.run_name, bin_seconds=seconds,
                                timestamp_col=info.timestamp_col, bins=results, history=bins,
                                references=references)


def history_bins(df: Optional[pd.DataFrame], timestamp_col: str, seconds: int) -> dict[TimeBin, pd.DataFrame]:
    """The ``history`` of :func:`run_continuous_test` from a stored :meth:`~ContinuousTestResult.history_df`."""
    if df is None or df.empty:
        return {}
    return split_bins(df, timestamp_col, seconds)


def severity_level(name: str) -> int:
    """0–3 of a severity name (``"MEDIUM"`` → 2)."""
    return int(Severity[name])


__all__ = ["run_continuous_test", "ContinuousTestResult", "ContinuousInfo", "parse_continuous_info", "bin_seconds",
           "split_bins", "merge_rows", "rolling_reference", "history_bins", "continuous_test_keys", "BIN_SIZES",
           "CONTINUOUS_CATEGORIES", "worst_metric_by_test", "timestamps", "severity_level"]
