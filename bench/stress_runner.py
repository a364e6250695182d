"""One tool's side of bench/stress_tests.py, run in that tool's own process and venv.

    python bench/stress_runner.py speed  TOOL REF.parquet EVAL.parquet OUT.json
    python bench/stress_runner.py detect TOOL DATA_DIR OUT.json

TOOL: ``kilele`` (the project's venv: kilele_stress, the whole default catalogue, a logistic
regression in the loop), ``evidently`` (bench/.venvs/evidently: ``Report([DataDriftPreset()])``)
or ``deepchecks`` (bench/.venvs/deepchecks: ``train_test_validation()`` suite). Every tool reads
the same Parquet files with pandas and runs with its default thresholds. ``speed`` writes the time
of the tool's own call (reading and, for Kilele, training the model excluded; both timed apart) and
the process's peak RSS; ``detect`` writes, per grid cell, what the tool flagged (raw: the parent,
bench/stress_tests.py, applies the detection rules). Imports only numpy, pandas and the tool.
"""
from __future__ import annotations

import json
import resource
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "y"
warnings.filterwarnings("ignore")


def columns(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    num = [c for c in df.columns if c.startswith("num_")]
    cat = [c for c in df.columns if c.startswith("cat_")]
    return num, cat


# -- Kilele: the model in the loop ------------------------------------------------------------------

class LogRegModel:
    """Standardised numerics (non-numbers and nulls → the mean) + one-hot categories (unseen → none),
    scikit-learn LogisticRegression; ``predict_df`` returns the positive-class probability."""

    def __init__(self, ref: pd.DataFrame, max_rows: int = 100_000):
        from sklearn.linear_model import LogisticRegression
        self.num, self.cat = columns(ref)
        fit = ref.iloc[:max_rows]
        x = fit[self.num].to_numpy(float)
        self.mean, self.std = np.nanmean(x, 0), np.nanstd(x, 0) + 1e-12
        self.cats = {c: np.asarray(sorted(fit[c].dropna().unique()), dtype=object) for c in self.cat}
        self.clf = LogisticRegression(max_iter=300).fit(self.matrix(fit), fit[LABEL].to_numpy())

    def matrix(self, df: pd.DataFrame) -> np.ndarray:
        parts = []
        for c in self.num:
            v = df[c]
            if v.dtype == object or str(v.dtype).startswith(("string", "str")):
                v = pd.to_numeric(v, errors="coerce")
            parts.append(v.to_numpy(float, na_value=np.nan))
        x = (np.column_stack(parts) - self.mean) / self.std
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        blocks = [x]
        for c in self.cat:
            codes = pd.Categorical(df[c], categories=self.cats[c]).codes
            onehot = np.zeros((len(df), len(self.cats[c])))
            ok = codes >= 0
            onehot[np.flatnonzero(ok), codes[ok]] = 1.0
            blocks.append(onehot)
        return np.hstack(blocks)

    #: Wall time spent inside ``predict_df`` (the model under test, not the engine).
    seconds = 0.0

    def predict_df(self, df: pd.DataFrame) -> np.ndarray:
        t = time.perf_counter()
        try:
            return self.clf.predict_proba(self.matrix(df))[:, 1]
        finally:
            self.seconds += time.perf_counter() - t


def kilele_run(ref: pd.DataFrame, ev: pd.DataFrame, model) -> pd.DataFrame:
    from kilele_stress import run_stress_test
    config = {"run_name": "bench", "data_info": {"label_col": LABEL, "ref_path": "ref.parquet", "eval_path": "eval.parquet"}, "model_info": {},
              "model_task": "Binary Classification", "random_seed": 42}
    result = run_stress_test(config, model=model, ref=ref, eval=ev)
    return result.test_cases_df(include_details=True)


def kilele_flags(cases: pd.DataFrame) -> dict:
    out = []
    for row in cases.itertuples(index=False):
        if row.status in ("FAIL", "WARNING"):
            out.append([row.test_key, list(row.features), row.status, row.severity, row.test_category])
    return {"cases": out, "counts": cases["status"].value_counts().to_dict()}


# -- Evidently ---------------------------------------------------------------------------------------

def evidently_run(ref: pd.DataFrame, ev: pd.DataFrame) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    num, cat = columns(ref)
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat + [LABEL])
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(ev, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition))
    return snapshot.dict()


def evidently_flags(snap: dict) -> dict:
    """Drifted columns (drift score past the method's threshold, as Evidently's own report shows)
    and the dataset-level drift (share of drifted columns ≥ the preset's drift_share)."""
    drifted, dataset, share = [], None, None
    for metric in snap["metrics"]:
        cfg = metric.get("config", {})
        mtype = str(cfg.get("type", ""))
        value = metric.get("value")
        if mtype.endswith("ValueDrift"):
            method = cfg.get("method") or ""
            threshold = cfg.get("threshold")
            # Evidently: p-value methods drift when value < threshold, distances when value ≥ threshold
            p_value = "p_value" in method.lower() or "test" in method.lower() and "distance" not in method.lower()
            is_drift = (value < threshold) if p_value else (value >= threshold)
            if is_drift:
                drifted.append(cfg.get("column"))
        elif mtype.endswith("DriftedColumnsCount"):
            share = value.get("share") if isinstance(value, dict) else None
            dataset = share is not None and share >= cfg.get("drift_share", 0.5)
    return {"drifted": drifted, "dataset": bool(dataset), "share": share}


# -- deepchecks --------------------------------------------------------------------------------------

def deepchecks_run(ref: pd.DataFrame, ev: pd.DataFrame):
    from deepchecks.tabular import Dataset
    from deepchecks.tabular.suites import train_test_validation
    num, cat = columns(ref)
    train = Dataset(ref, label=LABEL, cat_features=cat)
    test = Dataset(ev, label=LABEL, cat_features=cat)
    return train_test_validation().run(train_dataset=train, test_dataset=test)


def deepchecks_flags(result) -> dict:
    """Every condition that did not pass (FAIL or WARN category), with its check and details text;
    checks that raised are listed apart."""
    failed, errors = [], []
    for r in result.results:
        name = type(r).__name__
        if name == "CheckFailure":
            errors.append([r.header, str(r.exception)[:200]])
            continue
        for cond in getattr(r, "conditions_results", []) or []:
            if not cond.is_pass():
                failed.append([r.get_header(), cond.category.value, cond.name, cond.details])
    return {"failed": failed, "errors": errors}


# -- modes -------------------------------------------------------------------------------------------

def peak_rss() -> int:
    """This process's own high-water mark (VmHWM, bytes). Not getrusage: after fork + exec, ru_maxrss (self or
    children) keeps the parent's high-water mark at the time of the fork."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def speed(tool: str, ref_path: str, eval_path: str, out: str) -> None:
    t0 = time.perf_counter()
    ref, ev = read(ref_path), read(eval_path)
    t_read = time.perf_counter() - t0
    t_prep, t_model = 0.0, 0.0
    cpu0 = time.process_time()
    if tool == "kilele":
        t1 = time.perf_counter()
        model = LogRegModel(ref)
        t_prep = time.perf_counter() - t1
        t2 = time.perf_counter()
        cpu0 = time.process_time()
        cases = kilele_run(ref, ev, model)
        t_model = model.seconds
        info = {"cases": len(cases), "tests": int(cases["test_key"].nunique()),
                "status": cases["status"].value_counts().to_dict(),
                "skipped_tests": sorted(cases.loc[cases["status"] == "SKIP", "test_key"].unique().tolist())}
    elif tool == "evidently":
        t2 = time.perf_counter()
        snap = evidently_run(ref, ev)
        info = {"metrics": len(snap["metrics"])}
    else:
        t2 = time.perf_counter()
        result = deepchecks_run(ref, ev)
        info = {"checks": len(result.results)}
    t_tool = time.perf_counter() - t2
    cpu_tool = time.process_time() - cpu0
    rss = peak_rss()
    Path(out).write_text(json.dumps({"tool_seconds": t_tool, "tool_cpu_seconds": cpu_tool, "model_call_seconds": t_model,
                                     "read_seconds": t_read, "model_fit_seconds": t_prep,
                                     "peak_rss_self": rss, "info": info}))


def detect(tool: str, data_dir: str, out: str) -> None:
    """Writes one JSON line per grid cell to OUT as it goes (a run stopped by a timeout keeps what it did)."""
    data = Path(data_dir)
    cells = json.loads((data / "cells.json").read_text())
    refs: dict = {}
    models: dict = {}
    errors = 0
    with open(out, "w") as sink:
        for cell in cells:
            seed = cell["seed"]
            if seed not in refs:
                refs = {seed: read(data / f"ref_{seed}.parquet")}
                if tool == "kilele":
                    models = {seed: LogRegModel(refs[seed])}
            ev = read(data / cell["file"])
            t0 = time.perf_counter()
            try:
                if tool == "kilele":
                    flags = kilele_flags(kilele_run(refs[seed], ev, models[seed]))
                elif tool == "evidently":
                    flags = evidently_flags(evidently_run(refs[seed], ev))
                else:
                    flags = deepchecks_flags(deepchecks_run(refs[seed], ev))
                error = None
            except Exception as e:  # a tool that raises on a cell: recorded, not a detection
                flags, error = {}, f"{type(e).__name__}: {str(e)[:300]}"
                errors += 1
                if errors <= 2:
                    traceback.print_exc()
            sink.write(json.dumps({**cell, "flags": flags, "error": error, "seconds": time.perf_counter() - t0},
                                  default=str) + "\n")
            sink.flush()


if __name__ == "__main__":
    mode, tool, *args = sys.argv[1:]
    if tool == "kilele":
        from kilele_stress import stats  # noqa: F401  (the engine pins BLAS threads itself)
    (speed if mode == "speed" else detect)(tool, *args)
