"""The engine end to end on synthetic data: SKIP rules, broken tests and models, sampling, time
bins, the result DataFrames and their Parquet round trip, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from stress_gen import config, make_frame, predict_binary, run

from kilele_stress import ConfigError, DataError, ModelError, run_stress_test
from kilele_stress.core import REGISTRY, Category, Severity, Status, register
from kilele_stress.results import CASE_COLUMNS, StressTestResult

QUICK = ["required_features", "null_check", "numeric_drift", "prediction_drift", "label_drift", "multivariate_drift"]


@pytest.fixture(scope="module")
def frames():
    return make_frame(1500, seed=1), make_frame(1500, seed=2)


@pytest.fixture
def temp_test():
    """Register a throwaway test; removed afterwards (the registry is global)."""
    added = []

    def add(key, fn, **kw):
        register(key=key, name=key.title(), category=Category.DRIFT, thresholds=[1, 2, 3], **kw)(fn)
        added.append(key)
    yield add
    for key in added:
        REGISTRY.pop(key, None)


def test_fewer_than_100_rows_skip(frames):
    ref, ev = frames
    result = run(ref, ev.head(99), tests=["numeric_drift", "null_drift"])
    assert {c.status for c in result.cases} == {Status.SKIP}
    assert all("fewer than 100 rows" in c.reason for c in result.cases)


def test_missing_requirements_skip_with_a_reason(frames):
    ref, ev = frames
    result = run(ref, ev.drop(columns=["y"]), tests=["label_drift", "prediction_drift", "conflicting_labels"],
                 model=None)
    by_key = {c.test_key: c for c in result.cases}
    assert by_key["label_drift"].status == Status.SKIP and "no labels" in by_key["label_drift"].reason
    assert by_key["prediction_drift"].status == Status.SKIP and "no predictions" in by_key["prediction_drift"].reason


def test_a_test_that_raises_is_one_high_case_not_a_crash(frames, temp_test):
    def broken(ctx):
        yield ctx.case(["num_a"], {"m": 0.0})
        raise ZeroDivisionError("boom")
    temp_test("broken_test", broken)
    temp_test("needs_protected", lambda ctx: iter(()), requires={"protected"})
    result = run(*frames, tests=["broken_test", "needs_protected"])
    broken_cases = [c for c in result.cases if c.test_key == "broken_test"]
    assert [c.status for c in broken_cases] == [Status.PASS, Status.FAIL]
    assert broken_cases[1].severity == Severity.HIGH and "ZeroDivisionError: boom" in broken_cases[1].reason
    protected = [c for c in result.cases if c.test_key == "needs_protected"][0]
    assert protected.status == Status.SKIP and "protected" in protected.reason


def test_a_model_that_raises_is_high_not_fatal(frames):
    def bad_model(df):
        raise RuntimeError("model exploded")
    result = run(*frames, tests=["prediction_drift", "null_check", "numeric_drift"], model=bad_model)
    pred = [c for c in result.cases if c.test_key == "prediction_drift"][0]
    assert pred.status == Status.FAIL and pred.severity == Severity.HIGH and "model exploded" in pred.reason
    assert result.model_error and "model exploded" in result.model_error
    assert any(c.test_key == "numeric_drift" and c.status == Status.PASS for c in result.cases)


def test_a_model_of_the_wrong_shape_is_reported(frames):
    result = run(*frames, tests=["prediction_drift"], model=lambda df: np.ones(len(df) - 1))
    assert "predictions for" in result.cases[0].reason and result.cases[0].severity == Severity.HIGH


def test_model_errors_raised_inside_a_test_are_high(frames, temp_test):
    def calls_model(ctx):
        ctx.predict(ctx.eval_raw.head(10))
        yield ctx.case([], {"m": 0.0})
    temp_test("calls_model", calls_model, requires={"model"})
    result = run(*frames, tests=["calls_model"], model=lambda df: (_ for _ in ()).throw(ValueError("nope"))
                 if len(df) < 100 else predict_binary(df))
    assert result.cases[0].severity == Severity.HIGH and "ValueError: nope" in result.cases[0].reason


def test_predictions_from_pred_col_without_a_model(frames):
    ref, ev = (f.assign(p=predict_binary(f)) for f in frames)
    result = run(ref, ev, tests=["prediction_drift", "null_check"], model=None, cfg=config(pred_col="p"))
    assert all(c.status == Status.PASS for c in result.cases)
    assert result.model_performance["evaluation"]["auc"] > 0.8
    assert "p" not in {f for c in result.cases for f in c.features}


def test_sampling_is_seeded_and_reported(frames):
    ref, ev = frames
    cfg = config()
    cfg["tests_config"] = {"multivariate_drift": {"sample_rows": 500}}
    a, b = (run(ref, ev, tests=["multivariate_drift"], cfg=cfg) for _ in range(2))
    assert a.cases[0].metrics == b.cases[0].metrics
    assert [s["reason"] for s in a.samplings] == ["domain classifier: reference rows",
                                                  "domain classifier: evaluation rows"]
    assert a.samplings[0]["from_rows"] == 1500 and a.samplings[0]["to_rows"] == 500
    assert a.cases[0].details["sampling"] == a.samplings
    assert a.cases[0].metrics["sample_rows"] == 1000
    cfg["random_seed"] = 7
    c = run(ref, ev, tests=["multivariate_drift"], cfg=cfg)
    assert c.cases[0].metrics["auc"] != a.cases[0].metrics["auc"]


def test_tests_config_overrides_change_the_verdict(frames):
    ref, ev = frames
    ev = ev.assign(num_a=ev["num_a"] + 0.5)
    cfg = config()
    lenient = {"wasserstein_thresholds": [1, 2, 3]}  # PSI alone decides
    cfg["tests_config"] = {"numeric_drift": {"params": lenient}}
    default = run(ref, ev, tests=["numeric_drift"], cfg=cfg)
    cfg = config()
    cfg["tests_config"] = {"numeric_drift": {"thresholds": [0.01, 0.02, 0.03], "params": lenient},
                           "null_check": {"enabled": False}}
    strict = run(ref, ev, tests=["numeric_drift", "null_check"], cfg=cfg)
    a = [c for c in default.cases if c.features == ["num_a"]][0]
    b = [c for c in strict.cases if c.features == ["num_a"]][0]
    assert a.severity < Severity.HIGH and b.severity == Severity.HIGH
    assert b.thresholds.as_tuple() == (0.01, 0.02, 0.03)
    assert not any(c.test_key == "null_check" for c in strict.cases)


def test_result_frames_have_the_spec_columns_and_round_trip(frames, tmp_path):
    ref, ev = frames
    ev = ev.copy()
    ev.loc[:200, "num_a"] = np.nan
    result = run(ref, ev, tests=QUICK, project_id="proj")
    cases = result.test_cases_df()
    assert list(cases.columns[:7]) == CASE_COLUMNS
    rest = cases.columns[7:]
    assert all(c.startswith(("metric:", "threshold:")) for c in rest)
    assert {"metric:psi", "metric:prevalence", "metric:impact", "threshold:low", "threshold:medium",
            "threshold:high", "threshold:impact_low"} <= set(rest)
    assert set(cases["status"]) <= {"PASS", "WARNING", "FAIL", "SKIP"}
    assert set(cases["severity"]) <= {"NONE", "LOW", "MEDIUM", "HIGH"}
    run_row = result.test_run_df()
    assert len(run_row) == 1
    for col in ["test_run_id", "name", "project_id", "model_task", "testing_type", "upload_time", "duration_millis",
                "num_inputs", "num_failing_inputs", "summary_counts.total", "summary_counts.pass",
                "summary_counts.warning", "summary_counts.fail", "summary_counts.skip", "severity_counts.none",
                "severity_counts.low", "severity_counts.medium", "severity_counts.high",
                "model_performance.reference.accuracy", "model_performance.evaluation.auc"]:
        assert col in run_row.columns, col
    row = run_row.iloc[0]
    assert row["summary_counts.total"] == len(cases) and row["num_inputs"] == 1500
    assert row["num_failing_inputs"] == 201 and row["project_id"] == "proj"
    assert row["testing_type"] == "Stress Testing"

    again = StressTestResult.from_parquet(result.to_parquet(tmp_path / "out"))
    pd.testing.assert_frame_equal(again.test_cases_df(), cases)
    pd.testing.assert_frame_equal(again.test_run_df(), run_row)
    assert again.samplings == result.samplings and again.severity == result.severity
    stored = pd.read_parquet(tmp_path / "out" / "test_cases.parquet")
    assert {"test_key", "reason", "details"} <= set(stored.columns)


def test_time_bin_filters_eval_and_labels_results(frames):
    ref, ev = frames
    stamps = pd.date_range("2024-01-01", periods=len(ev), freq="min")
    ref = ref.assign(ts=pd.date_range("2023-01-01", periods=len(ref), freq="min"))
    ev = ev.assign(ts=stamps)
    bin_ = (stamps[100], stamps[700])
    result = run(ref, ev, tests=["numeric_drift"], cfg=config(timestamp_col="ts"), time_bin=bin_)
    assert result.num_inputs == 600 and result.testing_type == "Continuous Testing"
    df = result.test_cases_df()
    assert (df["time_bin_start"] == bin_[0]).all() and (df["time_bin_end"] == bin_[1]).all()
    assert "ts" not in {f for c in result.cases for f in c.features}
    with pytest.raises(ConfigError, match="timestamp_col"):
        run(ref, ev, tests=["numeric_drift"], time_bin=bin_)


def test_bad_inputs_raise_naming_the_key(frames):
    ref, ev = frames
    with pytest.raises(DataError, match="data_info.label_col"):
        run(ref, ev, cfg=config(label="nope"))
    with pytest.raises(DataError, match="data_info.pred_col"):
        run(ref, ev, cfg=config(pred_col="nope"))
    with pytest.raises(ConfigError, match="model_info.trial_id"):
        run_stress_test({**config(), "model_info": {"trial_id": "t1"}}, ref=ref, eval=ev)
    with pytest.raises(ConfigError, match="tests: unknown test"):
        run(ref, ev, tests=["nope"])
    with pytest.raises(ModelError, match="neither predict_df"):
        run(ref, ev, model=object())


def _write_inputs(tmp_path, frames):
    ref, ev = frames
    ref.to_csv(tmp_path / "ref.csv", index=False)
    ev.assign(num_c=ev["num_c"] * 3).to_parquet(tmp_path / "eval.parquet")
    (tmp_path / "model.py").write_text(
        "import numpy as np, pandas as pd\n"
        "def predict_df(df):\n"
        "    x = pd.to_numeric(df['num_a'], errors='coerce').fillna(0).to_numpy()\n"
        "    return 1 / (1 + np.exp(-2 * x))\n")
    (tmp_path / "row_model.py").write_text(
        "import math\n"
        "def predict_dict(row):\n"
        "    return 1 / (1 + math.exp(-2 * row['num_a']))\n")


def test_model_files_predict_df_and_predict_dict(tmp_path, frames):
    _write_inputs(tmp_path, frames)
    base = config(ref_path=str(tmp_path / "ref.csv"), eval_path=str(tmp_path / "eval.parquet"))
    a = run_stress_test({**base, "model_info": {"path": str(tmp_path / "model.py")}}, tests=["prediction_drift"])
    b = run_stress_test({**base, "model_info": {"path": str(tmp_path / "row_model.py")}}, tests=["prediction_drift"])
    assert a.cases[0].metrics["psi"] == pytest.approx(b.cases[0].metrics["psi"])
    (tmp_path / "broken.py").write_text("raise ImportError('no torch here')\n")
    with pytest.raises(ModelError, match="no torch here"):
        run_stress_test({**base, "model_info": {"path": str(tmp_path / "broken.py")}})


def test_cli_run_through_the_kilele_command(tmp_path, frames, monkeypatch):
    from kilele.cli import cli
    _write_inputs(tmp_path, frames)
    cfg = {"tests_config": {"multivariate_drift": {"enabled": False}}, "run_name": "cli run"}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["stress", "run", "--ref", str(tmp_path / "ref.csv"),
                                   "--eval", str(tmp_path / "eval.parquet"), "--label-col", "y",
                                   "--model", str(tmp_path / "model.py"), "--config", str(tmp_path / "cfg.json"),
                                   "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "cli run (Binary Classification, 1500 evaluation rows" in res.output
    assert "Numeric Feature Drift [num_c]" in res.output and "Drift" in res.output
    assert (out / "test_cases.parquet").exists() and (out / "test_run.parquet").exists()
    assert "report: not available" in res.output or "report.html" in res.output
    stored = StressTestResult.from_parquet(out)
    assert not any(c.test_key == "multivariate_drift" for c in stored.cases)
    again = CliRunner().invoke(cli, ["stress", "report", str(out)])
    assert again.exit_code == 0 and "cli run" in again.output
    bad = CliRunner().invoke(cli, ["stress", "run", "--ref", str(tmp_path / "nope.csv"),
                                   "--eval", str(tmp_path / "eval.parquet"), "--label-col", "y"])
    assert bad.exit_code == 1 and "nope.csv: no such file" in bad.output


def test_multiclass_pred_col_of_class_labels():
    ref, ev = make_frame(1500, 1, "multiclass"), make_frame(1500, 2, "multiclass")
    ref, ev = ref.assign(p=ref["y"]), ev.assign(p=ev["y"].where(ev.index % 10 != 0, 0))  # 90 % right
    result = run(ref, ev, tests=["prediction_drift", "label_drift"], model=None, cfg=config(pred_col="p"))
    assert result.model_task == "Multi-class Classification"
    assert all(c.status == Status.PASS for c in result.cases), result.cases
    assert 0.85 < result.model_performance["evaluation"]["accuracy"] < 0.95
