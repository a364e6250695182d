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
    """Every WARNING and FAIL case: [test, features, status, severity, category, thresholds
    (low, medium), the subset it names (subset tests; else None), the metric it compared (Overall
    Performance; else None)]."""
    out = []
    flagged = cases[cases["status"].isin(["FAIL", "WARNING"])]
    for row in flagged.to_dict("records"):
        details = row["details"]  # JSON text in the DataFrame (include_details=True)
        details = json.loads(details) if isinstance(details, str) and details else details or {}
        worst = (details.get("subsets") or {}).get("worst")
        thresholds = [None if pd.isna(row.get(c)) else float(row[c]) for c in ("threshold:low", "threshold:medium")]
        out.append([row["test_key"], list(row["features"]), row["status"], row["severity"], row["test_category"],
                    thresholds, worst, details.get("metric")])
    return {"cases": out, "counts": cases["status"].value_counts().to_dict()}


# -- Kilele: is a claim made on a control pair true of the population? ----------------------------------
#
# A control pair is two samples of one distribution, so a flag on it is a false positive unless what
# it claims holds for that distribution. Claims about the model (a subset where it does worse than its
# own confidence says, or worse than on the reference it was given) and about the label's balance can
# be true of clean data; they are checked against a large fresh draw (``population``). Every other
# flag on a control (drift, abnormal inputs…) claims a difference that does not exist: false.

VERIFIABLE = ("label_imbalance", "beats_dummy", "overall_performance", "subset_performance",
              "subset_performance_degradation")


def _score(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    if metric == "auc":
        return float(roc_auc_score(y, p))
    guess = (p > 0.5).astype(int)
    return float(f1_score(y, guess) if metric == "f1" else accuracy_score(y, guess))


def _subset_mask(df: pd.DataFrame, ref: pd.DataFrame, col: str, label: str) -> np.ndarray | None:
    """Rows of ``df`` in the subset a subset test named: a category, the null subset, or an interval of
    the reference quantile bins as the engine labels them ("≤ a", "(a, b]", "> b")."""
    import re
    v = df[col]
    if label == "(null)":
        return v.isna().to_numpy()
    if col.startswith("cat_"):
        return (v == label).to_numpy()
    x = pd.to_numeric(v, errors="coerce").to_numpy(float)
    if m := re.fullmatch(r"≤ (\S+)", label):
        return x <= float(m.group(1))
    if m := re.fullmatch(r"> (\S+)", label):
        return x > float(m.group(1))
    if m := re.fullmatch(r"\((\S+), (\S+)\]", label):
        return (x > float(m.group(1))) & (x <= float(m.group(2)))
    return None


def verify_claims(cases: list, ref: pd.DataFrame, pop: pd.DataFrame, model) -> list:
    """Per flagged case: [holds in the population (bool), how it was judged]. The claim's size is the
    threshold of the level it was flagged at (low for a WARNING, medium for a FAIL); labels' bins are
    4-significant-digit edges, so a subset is re-cut at the precision the engine printed it."""
    out = []
    y_pop = pop[LABEL].to_numpy()
    p_pop = p_ref = None
    for key, feats, status, _sev, _cat, thresholds, worst, metric in cases:
        level = (thresholds or [None, None])[0 if status == "WARNING" else 1]
        if key not in VERIFIABLE or level is None:
            out.append([False, "a difference between two samples of one distribution"])
            continue
        if key == "label_imbalance":
            share = float(np.bincount(y_pop).max() / len(y_pop))
            out.append([share >= level, f"population's largest class share {share:.3f} vs {level:g}"])
            continue
        if p_pop is None:
            p_pop, p_ref = model.predict_df(pop), model.predict_df(ref)
        if key == "beats_dummy":  # flagged when the gain is at or below the level (lower is worse)
            majority = int(np.bincount(ref[LABEL].to_numpy()).argmax())
            acc, dummy = _score("accuracy", y_pop, p_pop), float(np.mean(y_pop == majority))
            gain = (acc - dummy) / (1 - dummy)
            out.append([gain <= level, f"population's gain over the majority class {gain:.3f} vs {level:g}"])
            continue
        if key == "overall_performance":  # relative drop from the given reference to the population
            r, e = _score(metric, ref[LABEL].to_numpy(), p_ref), _score(metric, y_pop, p_pop)
            drop = (r - e) / abs(r)
            out.append([drop >= level, f"{metric} {r:.3f} on the given reference, {e:.3f} on the population: "
                                       f"relative drop {drop:.3f} vs {level:g}"])
            continue
        col = feats[0] if feats else None
        mask_pop = _subset_mask(pop, ref, col, worst) if col and worst else None
        if mask_pop is None or mask_pop.sum() < 100:
            out.append([False, f"subset {col} {worst!r} not re-cut"])
            continue
        right_pop = ((p_pop > 0.5).astype(int) == y_pop)
        if key == "subset_performance":
            conf = np.maximum(p_pop, 1 - p_pop)
            gap = (conf[mask_pop].mean() - right_pop[mask_pop].mean()) - (conf.mean() - right_pop.mean())
            out.append([bool(gap >= level), f"population shortfall on {col} {worst} {gap:.3f} vs {level:g}"])
        else:
            mask_ref = _subset_mask(ref, ref, col, worst)
            right_ref = ((p_ref > 0.5).astype(int) == ref[LABEL].to_numpy())
            overall = max(right_ref.mean() - right_pop.mean(), 0.0)
            drop = right_ref[mask_ref].mean() - right_pop[mask_pop].mean() - overall
            out.append([bool(drop >= level), f"drop from the given reference to the population on {col} {worst} "
                                             f"beyond the whole data's {drop:.3f} vs {level:g}"])
    return out


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
                    if cell["fault"] == "control" and flags["cases"]:
                        pop = read(data / f"pop_{seed}.parquet")
                        flags["verified"] = verify_claims(flags["cases"], refs[seed], pop, models[seed])
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
