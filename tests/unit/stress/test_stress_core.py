"""The engine's core: the one severity rule, thresholds, test cases, the config and its errors."""
from __future__ import annotations

import math

import pytest

from kilele_stress import ConfigError, parse_config
from kilele_stress.core import (Category, Severity, Status, TestCase, Thresholds, category_severity, combine, grade,
                                registry)
from kilele_stress.results import StressTestResult

PSI = Thresholds(0.1, 0.2, 0.6)


@pytest.mark.parametrize("metric,expected", [
    (0.0, (Status.PASS, Severity.NONE)), (0.0999, (Status.PASS, Severity.NONE)),
    (0.1, (Status.WARNING, Severity.LOW)), (0.1999, (Status.WARNING, Severity.LOW)),
    (0.2, (Status.FAIL, Severity.MEDIUM)), (0.5999, (Status.FAIL, Severity.MEDIUM)),
    (0.6, (Status.FAIL, Severity.HIGH)), (7.0, (Status.FAIL, Severity.HIGH)),
    (float("nan"), (Status.PASS, Severity.NONE)),
])
def test_grade_is_the_one_rule(metric, expected):
    assert grade(metric, PSI) == expected


def test_lower_is_worse_mirrors_the_rule():
    parity = Thresholds(0.9, 0.8, 0.6, higher_is_worse=False)
    assert [parity.level(m) for m in (0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.1)] == [
        Severity.NONE, Severity.LOW, Severity.LOW, Severity.MEDIUM, Severity.MEDIUM, Severity.HIGH, Severity.HIGH]


def test_zero_means_any_and_none_means_never():
    any_then_share = Thresholds(0, 0.01, 0.05)
    assert any_then_share.level(0.0) == Severity.NONE
    assert any_then_share.level(1e-9) == Severity.LOW
    assert any_then_share.level(0.02) == Severity.MEDIUM
    warn_only = Thresholds(0, None, None)
    assert warn_only.level(1e6) == Severity.LOW


def test_thresholds_must_ascend():
    with pytest.raises(ValueError, match="ascending"):
        Thresholds(0.2, 0.1, 0.6)
    with pytest.raises(ValueError, match="descending"):
        Thresholds(0.6, 0.8, 0.9, higher_is_worse=False)
    assert Thresholds.from_value([0.1, None, 0.5]).as_tuple() == (0.1, None, 0.5)
    assert Thresholds.from_value({"low": 1, "medium": 2, "high": 3}).high == 3


def test_prevalence_and_impact_take_the_higher_level():
    assert combine(Severity.LOW, Severity.HIGH) == Severity.HIGH
    assert combine() == Severity.NONE


def _case(severity: Severity, status: Status | None = None) -> TestCase:
    from kilele_stress.core import status_of
    return TestCase("k", "K", Category.DRIFT, [], status or status_of(severity), severity)


def test_category_severity_is_the_mean_and_skips_do_not_count():
    cases = [_case(Severity.HIGH), _case(Severity.NONE), _case(Severity.NONE, Status.SKIP)]
    mean, level = category_severity(cases)
    assert mean == pytest.approx(1.5) and level == Severity.MEDIUM
    assert category_severity([_case(Severity.NONE, Status.SKIP)]) == (0.0, Severity.NONE)


def test_run_severity_is_the_highest_category():
    cases = [_case(Severity.HIGH), _case(Severity.LOW)]
    cases[1].category = Category.ABNORMAL_INPUTS
    result = StressTestResult("id", "r", "Regression", "Stress Testing", None, 0, 0, 0, cases)
    assert result.category_severities()["Drift"][1] == Severity.HIGH
    assert result.severity == Severity.HIGH


def test_case_details_are_capped_and_json_safe():
    import numpy as np
    case = TestCase("k", "K", Category.DRIFT, ["f"], Status.PASS, Severity.NONE,
                    details={"bins": list(range(500)), "x": np.float32(0.5), "bad": float("nan"), "s": "a" * 999})
    assert len(case.details["bins"]) == 50
    assert case.details["x"] == 0.5 and case.details["bad"] is None and len(case.details["s"]) == 200
    again = TestCase.from_record(case.to_record())
    assert again.details == case.details and again.severity == Severity.NONE


# --- config ------------------------------------------------------------------------------------
BASE = {"run_name": "r", "data_info": {"label_col": "y", "ref_path": "a.csv", "eval_path": "b.csv"}}


def _with(**changes):
    cfg = {**BASE, "data_info": dict(BASE["data_info"])}
    cfg.update(changes)
    return cfg


def test_the_seed_config_validates():
    cfg = parse_config({"run_name": "Titanic",
                        "data_info": {"label_col": "Survived", "ref_path": "s3://b/t.csv", "eval_path": "s3://b/t.csv"},
                        "model_info": {"path": "s3://m/model.py"}})
    assert cfg.model_info.path == "s3://m/model.py" and cfg.model_task is None and cfg.random_seed == 42


@pytest.mark.parametrize("cfg,key", [
    ({"run_name": "r", "data_info": {"ref_path": "a", "eval_path": "b"}}, "data_info.label_col"),
    (_with(data_info={**BASE["data_info"], "labl_col": "y"}), "data_info.labl_col"),
    (_with(colour="red"), "colour"),
    (_with(model_task="Ranking"), "model_task"),
    (_with(model_info={"path": "m.py", "trial_id": "t"}), "model_info"),
    (_with(model_info={"app_version": 3}), "model_info"),
    (_with(tests_config={"numeric_drft": {}}), "tests_config.numeric_drft"),
    (_with(tests_config={"numeric_drift": {"binz": 4}}), "tests_config.numeric_drift.binz"),
    (_with(tests_config={"numeric_drift": {"thresholds": [0.5, 0.2, 0.1]}}), "tests_config.numeric_drift.thresholds"),
    (_with(tests_config={"numeric_drift": {"thresholds": [0.1, 0.2]}}), "tests_config.numeric_drift.thresholds"),
    (_with(tests_config={"numeric_drift": {"impact_thresholds": [0.1, 0.2, 0.3]}}),
     "tests_config.numeric_drift.impact_thresholds"),
    (_with(tests_config={"numeric_drift": False}), "tests_config.numeric_drift"),
])
def test_bad_configs_name_the_key(cfg, key):
    with pytest.raises(ConfigError) as e:
        parse_config(cfg)
    assert str(e.value).startswith(f"{key}:"), str(e.value)


def test_unknown_test_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown test .*numeric_drift"):
        parse_config(_with(tests_config={"nope": {}}))


def test_overrides_reach_the_settings():
    cfg = parse_config(_with(tests_config={
        "numeric_drift": {"thresholds": [0.05, None, 0.3], "bins": 20},
        "null_check": {"impact_thresholds": {"low": 0.02, "medium": 0.1, "high": 0.2}, "params": {"alpha": 0.01}},
        "duplicate_rows": {"enabled": False}}))
    s = cfg.settings()
    assert s["numeric_drift"].thresholds.as_tuple() == (0.05, None, 0.3)
    assert s["numeric_drift"].params == {"bins": 20, "epsilon": 1e-4, "alpha": 0.05,
                                          "wasserstein_thresholds": [0.05, 0.1, 0.25], "wasserstein_max_rows": 20_000}
    assert s["null_check"].impact_thresholds.as_tuple() == (0.02, 0.1, 0.2)
    assert s["null_check"].thresholds == registry()["null_check"].thresholds
    assert s["null_check"].params["alpha"] == 0.01 and not s["duplicate_rows"].enabled
    assert s["out_of_range"].enabled and set(s) == set(registry())


def test_the_catalogue_is_registered_with_the_spec_defaults():
    specs = registry()
    by_category = {}
    for spec in specs.values():
        by_category.setdefault(spec.category, []).append(spec.key)
    assert len(by_category[Category.DATA_CLEANLINESS]) == 11
    assert len(by_category[Category.ABNORMAL_INPUTS]) == 9
    assert len(by_category[Category.DRIFT]) == 10
    assert specs["numeric_drift"].thresholds.as_tuple() == (0.1, 0.2, 0.6)
    assert specs["duplicate_rows"].thresholds.as_tuple() == (0.01, 0.05, 0.2)
    assert specs["multivariate_drift"].thresholds.as_tuple() == (0.1, 0.25, 0.5)
    assert specs["correlation_drift"].thresholds.as_tuple() == (0.1, 0.3, 0.5)
    for key in ("type_check", "null_check", "out_of_range", "inconsistencies"):
        assert specs[key].thresholds.as_tuple() == (0.01, 0.05, 0.1)
        assert specs[key].impact_thresholds.as_tuple() == (0.01, 0.05, 0.1)
    assert all(math.isfinite(s.min_rows) for s in specs.values())
