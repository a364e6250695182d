"""A run's results: the test cases and one summary row, as DataFrames and Parquet.

Column names follow STRESS-TESTS.md ("Results"):

* :meth:`StressTestResult.test_cases_df`: ``test_run_id, features, test_batch_type,
  test_category, status, severity, importance_score``, then one ``metric:<name>`` column per
  metric any case computed, then ``threshold:low|medium|high`` (and ``threshold:impact_low…`` for
  prevalence-and-impact cases), then ``time_bin_start, time_bin_end`` for a time-bin run.
* :meth:`StressTestResult.test_run_df`: ``test_run_id, name, project_id, model_task,
  testing_type, upload_time, duration_millis, num_inputs, num_failing_inputs,
  summary_counts.{total,pass,warning,fail,skip}, severity_counts.{none,low,medium,high}``, the
  run's ``severity`` and ``category_severity.<category>``, and
  ``model_performance.{reference,evaluation}.<metric>``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from kilele_stress.core import Severity, Status, TestCase, category_severity

#: The format of the stored results (``from_parquet`` reads this version).
RESULTS_VERSION = "1.0.0"
CASE_COLUMNS = ["test_run_id", "features", "test_batch_type", "test_category", "status", "severity",
                "importance_score"]
_META_KEY = b"kilele_stress"


def model_performance(ctx) -> dict[str, dict[str, float]]:
    """The model's metrics on both frames (empty without labels and predictions)."""
    from sklearn import metrics as skm

    if not (ctx.has_labels() and ctx.has_predictions()):
        return {}
    out = {}
    for which, y, pred in (("reference", ctx.y_ref, ctx.ref_pred), ("evaluation", ctx.y_eval, ctx.eval_pred)):
        if ctx.is_classification:
            ok = (y >= 0) & ~(np.isnan(pred).any(axis=1) if pred.ndim == 2 else np.isnan(pred))
            y, pred = y[ok], pred[ok]
            guess = pred.argmax(axis=1) if pred.ndim == 2 else (pred >= 0.5).astype(int)
            m = {"accuracy": skm.accuracy_score(y, guess) if len(y) else np.nan,
                 "f1": skm.f1_score(y, guess, average="binary" if pred.ndim == 1 else "macro") if len(y) else np.nan}
            if pred.ndim == 1 and len(np.unique(y)) == 2:
                m["auc"] = skm.roc_auc_score(y, pred)
        else:
            ok = ~np.isnan(y) & ~np.isnan(pred)
            y, pred = y[ok], pred[ok]
            m = {"rmse": float(np.sqrt(np.mean((y - pred) ** 2))) if len(y) else np.nan,
                 "mae": float(np.mean(np.abs(y - pred))) if len(y) else np.nan,
                 "r2": skm.r2_score(y, pred) if len(y) > 1 else np.nan}
        out[which] = {k: float(v) for k, v in m.items()}
    return out


@dataclass
class StressTestResult:
    """Everything a run produced. ``cases`` are :class:`TestCase` objects; ``samplings`` every
    sampling a test did; ``timings`` milliseconds per test key."""
    test_run_id: str
    run_name: str
    model_task: str
    testing_type: str
    upload_time: datetime
    duration_millis: int
    num_inputs: int
    num_failing_inputs: int
    cases: list[TestCase]
    project_id: Optional[str] = None
    samplings: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model_performance: dict[str, dict[str, float]] = field(default_factory=dict)
    time_bin: Optional[tuple[Any, Any]] = None
    config: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, str] = field(default_factory=dict)
    model_error: Optional[str] = None
    random_seed: Optional[int] = None

    # --- summaries --------------------------------------------------------------------------
    def status_counts(self) -> dict[str, int]:
        counts = {s.value.lower(): 0 for s in Status}
        for c in self.cases:
            counts[c.status.value.lower()] += 1
        return {"total": len(self.cases), **counts}

    def severity_counts(self) -> dict[str, int]:
        counts = {s.name.lower(): 0 for s in Severity}
        for c in self.cases:
            counts[c.severity.name.lower()] += 1
        return counts

    def category_severities(self) -> dict[str, tuple[float, Severity]]:
        """Per category: (mean level of its non-skipped cases, nearest level)."""
        cats: dict[str, list[TestCase]] = {}
        for c in self.cases:
            cats.setdefault(str(c.category), []).append(c)
        return {cat: category_severity(cs) for cat, cs in cats.items()}

    @property
    def severity(self) -> Severity:
        """The run's severity: the highest of its categories'."""
        return max((lvl for _, lvl in self.category_severities().values()), default=Severity.NONE)

    def failing_cases(self) -> list[TestCase]:
        """Cases that warn or fail, the most severe and important first."""
        bad = [c for c in self.cases if c.status in (Status.WARNING, Status.FAIL)]
        return sorted(bad, key=lambda c: (-int(c.severity), -c.importance_score, c.test_key))

    # --- DataFrames -------------------------------------------------------------------------
    def test_cases_df(self, include_details: bool = False) -> pd.DataFrame:
        """One row per test case (see the module's docstring). ``include_details`` adds
        ``test_key``, ``reason`` and ``details`` (JSON) for a report or a reload."""
        metric_names: dict[str, None] = {}
        extra_names: dict[str, None] = {}
        for c in self.cases:
            metric_names.update(dict.fromkeys(c.metrics))
            extra_names.update(dict.fromkeys(c.extra_thresholds))
        rows = []
        for c in self.cases:
            row: dict[str, Any] = {"test_run_id": self.test_run_id, "features": list(c.features),
                                   "test_batch_type": c.test_name, "test_category": str(c.category),
                                   "status": c.status.value, "severity": c.severity.name,
                                   "importance_score": float(c.importance_score)}
            row.update({f"metric:{m}": c.metrics.get(m, np.nan) for m in metric_names})
            for prefix, thr in [("", c.thresholds)] + [(f"{n}_", c.extra_thresholds.get(n)) for n in extra_names]:
                for level in ("low", "medium", "high"):
                    value = getattr(thr, level) if thr is not None else None
                    row[f"threshold:{prefix}{level}"] = np.nan if value is None else float(value)
            if self.time_bin is not None:
                row["time_bin_start"], row["time_bin_end"] = (pd.Timestamp(t) for t in self.time_bin)
            if include_details:
                row.update(test_key=c.test_key, reason=c.reason, details=json.dumps(c.details),
                           _record=json.dumps(c.to_record()))
            rows.append(row)
        columns = CASE_COLUMNS + [f"metric:{m}" for m in metric_names] + \
            [f"threshold:{p}{lvl}" for p in [""] + [f"{n}_" for n in extra_names] for lvl in ("low", "medium", "high")]
        if self.time_bin is not None:
            columns += ["time_bin_start", "time_bin_end"]
        if include_details:
            columns += ["test_key", "reason", "details", "_record"]
        return pd.DataFrame(rows, columns=columns)

    def test_run_df(self) -> pd.DataFrame:
        """The run's one summary row (see the module's docstring)."""
        row: dict[str, Any] = {
            "test_run_id": self.test_run_id, "name": self.run_name, "project_id": self.project_id,
            "model_task": self.model_task, "testing_type": self.testing_type,
            "upload_time": pd.Timestamp(self.upload_time), "duration_millis": int(self.duration_millis),
            "num_inputs": int(self.num_inputs), "num_failing_inputs": int(self.num_failing_inputs)}
        row.update({f"summary_counts.{k}": v for k, v in self.status_counts().items()})
        row.update({f"severity_counts.{k}": v for k, v in self.severity_counts().items()})
        row["severity"] = self.severity.name
        row.update({f"category_severity.{cat}": lvl.name for cat, (_, lvl) in self.category_severities().items()})
        for which, metrics in self.model_performance.items():
            row.update({f"model_performance.{which}.{k}": v for k, v in metrics.items()})
        if self.time_bin is not None:
            row["time_bin_start"], row["time_bin_end"] = (pd.Timestamp(t) for t in self.time_bin)
        return pd.DataFrame([row])

    # --- storage ----------------------------------------------------------------------------
    def to_parquet(self, directory: Union[str, Path]) -> Path:
        """Write ``test_cases.parquet`` and ``test_run.parquet`` (the run's samplings, timings,
        schema and config in its metadata) to ``directory``; returns it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.test_cases_df(include_details=True).to_parquet(out / "test_cases.parquet", index=False)
        table = pa.Table.from_pandas(self.test_run_df(), preserve_index=False)
        meta = {"version": RESULTS_VERSION, "samplings": self.samplings, "timings": self.timings,
                "schema": self.schema, "config": self.config, "model_error": self.model_error,
                "random_seed": self.random_seed, "model_performance": self.model_performance,
                "time_bin": [str(t) for t in self.time_bin] if self.time_bin is not None else None}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               _META_KEY: json.dumps(meta, default=str).encode()})
        pq.write_table(table, out / "test_run.parquet")
        return out

    @classmethod
    def from_parquet(cls, directory: Union[str, Path]) -> "StressTestResult":
        """The result :meth:`to_parquet` wrote (failing-input row positions are not stored)."""
        import pyarrow.parquet as pq

        d = Path(directory)
        table = pq.read_table(d / "test_run.parquet")
        meta = json.loads(table.schema.metadata[_META_KEY])
        if meta.get("version", "").split(".")[0] != RESULTS_VERSION.split(".")[0]:
            raise ValueError(f"{d}: results version {meta.get('version')} (this engine reads {RESULTS_VERSION})")
        run = table.to_pandas().iloc[0]
        cases_df = pd.read_parquet(d / "test_cases.parquet")
        cases = [TestCase.from_record(json.loads(r)) for r in cases_df["_record"]]
        time_bin = tuple(pd.Timestamp(t) for t in meta["time_bin"]) if meta.get("time_bin") else None
        project = run["project_id"]
        return cls(test_run_id=str(run["test_run_id"]), run_name=str(run["name"]),
                   project_id=None if pd.isna(project) else str(project),
                   model_task=str(run["model_task"]), testing_type=str(run["testing_type"]),
                   upload_time=pd.Timestamp(run["upload_time"]).to_pydatetime(),
                   duration_millis=int(run["duration_millis"]), num_inputs=int(run["num_inputs"]),
                   num_failing_inputs=int(run["num_failing_inputs"]), cases=cases,
                   samplings=meta["samplings"], timings=meta["timings"], schema=meta["schema"],
                   config=meta["config"], model_error=meta.get("model_error"), random_seed=meta.get("random_seed"),
                   model_performance=meta.get("model_performance") or {}, time_bin=time_bin)

    # --- text -------------------------------------------------------------------------------
    def summary(self, max_failing: int = 30) -> str:
        """A plain-text summary: counts per status, severity per category, the failing cases."""
        counts = self.status_counts()
        lines = [f"{self.run_name} ({self.model_task}, {self.num_inputs} evaluation rows, "
                 f"{self.duration_millis} ms): severity {self.severity.name}",
                 "cases: " + ", ".join(f"{k} {v}" for k, v in counts.items())]
        for cat, (score, lvl) in self.category_severities().items():
            n_bad = sum(1 for c in self.cases if str(c.category) == cat and c.status in (Status.WARNING, Status.FAIL))
            lines.append(f"  {cat:<20} {lvl.name:<6} (mean {score:.2f}, {n_bad} warning/failing)")
        if self.model_error:
            lines.append(f"model error: {self.model_error}")
        if self.samplings:
            lines.append("sampled: " + "; ".join(f"{s['test_key']}: {s['to_rows']} of {s['from_rows']} rows"
                                                 for s in self.samplings))
        bad = self.failing_cases()
        if bad:
            lines.append("warning and failing cases:")
        for c in bad[:max_failing]:
            graded = next(iter(c.metrics.items()), ("", float("nan")))
            where = ", ".join(c.features) or "(all)"
            lines.append(f"  {c.status.value:<7} {c.severity.name:<6} {c.test_name} [{where}] "
                         f"{graded[0]}={graded[1]:.4g}" + (f" — {c.reason}" if c.reason else ""))
        if len(bad) > max_failing:
            lines.append(f"  … and {len(bad) - max_failing} more")
        return "\n".join(lines)
