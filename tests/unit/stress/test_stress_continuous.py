"""Continuous tests in the engine: time bins, incremental merge, the rolling reference, the report."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from stress_gen import make_frame, predict_binary

from kilele_stress import ConfigError, DataError
from kilele_stress.continuous import (ContinuousTestResult, bin_seconds, continuous_test_keys, history_bins,
                                      merge_rows, parse_continuous_info, rolling_reference, run_continuous_test,
                                      split_bins)
from kilele_stress.report.continuous import render_continuous

START = pd.Timestamp("2024-03-01", tz="UTC")
ROWS_PER_BIN = 150


def timestamped(bins: int, drift_from: int | None = None, seed: int = 2, first_bin: int = 0) -> pd.DataFrame:
    """``bins`` hourly bins of ``ROWS_PER_BIN`` rows each (ISO text timestamps, spread over the
    hour); ``num_a`` shifted by 1.5 σ from bin ``drift_from`` on."""
    df = make_frame(bins * ROWS_PER_BIN, seed=seed)
    hour = np.arange(len(df)) // ROWS_PER_BIN + first_bin
    minute = (np.arange(len(df)) % ROWS_PER_BIN) * 60 // ROWS_PER_BIN
    df["ts"] = [(START + pd.Timedelta(hours=int(h), minutes=int(m))).isoformat() for h, m in zip(hour, minute)]
    if drift_from is not None:
        df.loc[hour >= drift_from, "num_a"] += 1.5
    return df


def config(**continuous) -> dict:
    return {"run_name": "ct", "data_info": {"label_col": "y", "ref_path": "-", "eval_path": "-"},
            "continuous_info": {"timestamp_col": "ts", "bin_size": "hour", **continuous}}


def drift_failed(result: ContinuousTestResult) -> list[bool]:
    return [any(c.test_key == "numeric_drift" and c.features == ["num_a"] and c.status.value == "FAIL"
                for c in b.cases) for b in result.bins]


# --- binning -------------------------------------------------------------------------------------

def test_bin_sizes_are_hour_and_day_only():
    assert bin_seconds("hour") == 3600 and bin_seconds("day") == 86400 and bin_seconds(86400) == 86400
    for bad in ("week", 60, 7200, True, None):
        with pytest.raises(ConfigError, match="continuous_info.bin_size"):
            bin_seconds(bad)


def test_bins_are_aligned_to_the_epoch_in_utc_whatever_the_offset():
    df = pd.DataFrame({"ts": ["2024-03-01T00:59:59Z", "2024-03-01T01:00:00Z", "2024-03-01T01:30:00+01:00",
                              "2024-03-01 02:10:00"], "x": [1, 2, 3, 4]})
    bins = split_bins(df, "ts", 3600)
    assert [b[0].isoformat() for b in bins] == ["2024-03-01T00:00:00+00:00", "2024-03-01T01:00:00+00:00",
                                                "2024-03-01T02:00:00+00:00"]
    # 01:30+01:00 is 00:30 UTC: the first bin; a naive time is read as UTC.
    assert [list(f["x"]) for f in bins.values()] == [[1, 3], [2], [4]]
    assert all(end - start == pd.Timedelta(hours=1) for start, end in bins)
    days = split_bins(df, "ts", 86400)
    assert len(days) == 1 and next(iter(days))[1] == pd.Timestamp("2024-03-02", tz="UTC")


def test_epoch_second_timestamps_bin_like_text_ones():
    stamps = pd.Series(["2024-03-01T00:10:00Z", "2024-03-01T05:00:00Z"])
    epoch = pd.DataFrame({"ts": (pd.to_datetime(stamps) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)})
    assert list(split_bins(epoch, "ts", 3600)) == list(split_bins(pd.DataFrame({"ts": stamps}), "ts", 3600))


def test_a_bad_timestamp_or_column_is_a_data_error_naming_it():
    with pytest.raises(DataError, match=r"1 value\(s\) of column 'ts' are not timestamps \(e.g. 'soon'\)"):
        split_bins(pd.DataFrame({"ts": ["2024-03-01T00:00:00Z", "soon"]}), "ts", 3600)
    with pytest.raises(DataError, match="no column 'when'"):
        split_bins(pd.DataFrame({"ts": ["2024-03-01"]}), "when", 3600)


def test_continuous_info_is_checked_naming_the_key():
    assert parse_continuous_info({"bin_size": "day"}, timestamp_col="t").timestamp_col == "t"
    assert parse_continuous_info({"timestamp_col": "t", "reference": {"rolling_bins": 3}}).rolling_bins == 3
    with pytest.raises(ConfigError, match="continuous_info.timestamp_col"):
        parse_continuous_info({"bin_size": "day"})
    with pytest.raises(ConfigError, match="continuous_info.reference"):
        parse_continuous_info({"timestamp_col": "t", "reference": {"rolling_bins": 0}})
    with pytest.raises(ConfigError, match="continuous_info.colour: unknown key"):
        parse_continuous_info({"timestamp_col": "t", "colour": 1})


def test_the_continuous_categories_and_only_the_degradation_subset_test():
    keys = continuous_test_keys()
    assert {"null_check", "out_of_range", "numeric_drift", "prediction_drift", "overall_performance",
            "subset_performance_degradation"} <= set(keys)
    assert not {"duplicate_rows", "subset_performance", "weak_segments", "substitutions",
                "demographic_parity"} & set(keys)


# --- merging ---------------------------------------------------------------------------------------

def test_merge_adds_only_rows_not_already_in_the_bin():
    old = pd.DataFrame({"ts": ["a", "b", "c"], "x": [1.5, 2.0, np.nan]})
    # Stored and read back (Parquet), as the platform keeps a CT instance's rows.
    buffer = io.BytesIO()
    old.to_parquet(buffer)
    stored = pd.read_parquet(buffer)
    new = pd.DataFrame({"x": [2.0, np.nan, 4.0, 4.0], "ts": ["b", "c", "d", "d"]})  # other column order
    merged = merge_rows(stored, new)
    assert list(merged["ts"]) == ["a", "b", "c", "d", "d"]  # b, c not again; d twice (two inputs)
    assert merge_rows(merged, new).equals(merged)  # the same batch again adds nothing
    assert list(merge_rows(None, new)["ts"]) == ["b", "c", "d", "d"]
    with pytest.raises(DataError, match="columns differ"):
        merge_rows(old, new.drop(columns="x"))


def test_an_incremental_run_retests_only_touched_bins_with_the_union_of_their_rows():
    data = timestamped(3)
    first = run_continuous_test(config(), predict_binary, ref=make_frame(1000, seed=1), eval=data.iloc[:300])
    assert [b.num_inputs for b in first.bins] == [ROWS_PER_BIN, ROWS_PER_BIN]
    # Stored as one table, read back into bins (what the platform does between jobs).
    history = history_bins(first.history_df(), "ts", 3600)
    # The new batch repeats 50 rows of bin 1 and brings the other 100 of it... and bin 2.
    second = run_continuous_test(config(), predict_binary, ref=make_frame(1000, seed=1),
                                 eval=data.iloc[250:], history=history)
    assert [b.time_bin[0].hour for b in second.bins] == [1, 2]  # bin 0 untouched, not re-tested
    assert [b.num_inputs for b in second.bins] == [ROWS_PER_BIN, ROWS_PER_BIN]  # never counted twice
    assert [len(second.history[b]) for b in sorted(second.history)] == [ROWS_PER_BIN] * 3


# --- results and reference -----------------------------------------------------------------------------

def test_drift_from_a_bin_on_fails_those_bins_and_results_carry_the_bins():
    result = run_continuous_test(config(), predict_binary, ref=make_frame(1000, seed=1),
                                 eval=timestamped(4, drift_from=2))
    assert drift_failed(result) == [False, False, True, True]
    cases = result.test_cases_df()
    assert {"time_bin_start", "time_bin_end"} <= set(cases.columns)
    assert sorted(cases["time_bin_start"].unique()) == [START + pd.Timedelta(hours=h) for h in range(4)]
    assert set(cases["test_batch_type"]) >= {"Numeric Feature Drift", "Overall Performance"}
    runs = result.test_run_df()
    assert len(runs) == 4 and set(runs["testing_type"]) == {"Continuous Testing"}
    summaries = result.bin_summaries()
    assert [s["metrics"]["category_worst:Drift"] >= 2 for s in summaries] == [False, False, True, True]
    assert summaries[0]["metrics"]["model_performance:accuracy"] > 0.6


def test_rolling_reference_uses_the_last_n_bins_or_the_fixed_one_while_too_few_rows():
    fixed = pd.DataFrame({"x": [0]})
    bins = split_bins(timestamped(4), "ts", 3600)
    order = sorted(bins)
    ref, used = rolling_reference(order[3], bins, 2, fixed)
    assert len(ref) == 2 * ROWS_PER_BIN and set(ref["ts"]) == set(bins[order[1]]["ts"]) | set(bins[order[2]]["ts"])
    assert "rolling: 2 bin(s)" in used
    assert rolling_reference(order[0], bins, 2, fixed)[0] is fixed  # nothing before the first bin
    small = {b: f.iloc[:10] for b, f in bins.items()}
    assert rolling_reference(order[3], small, 2, fixed)[0] is fixed  # 20 rows: too few to test against


def test_with_a_rolling_reference_a_lasting_shift_fails_only_where_it_starts():
    data = timestamped(4, drift_from=2)
    rolling = run_continuous_test(config(reference={"rolling_bins": 1}), predict_binary,
                                  ref=make_frame(1000, seed=1), eval=data)
    assert drift_failed(rolling) == [False, False, True, False]
    assert "fixed" in rolling.references[rolling.bins[0].time_bin[0].isoformat()]


def test_the_report_plots_each_test_over_time_with_the_failed_bins():
    result = run_continuous_test(config(), predict_binary, ref=make_frame(1000, seed=1),
                                 eval=timestamped(4, drift_from=2))
    page = render_continuous(result)
    assert page.count("<tr><td>2024-03-01T0") == 4
    assert 'data-key="numeric_drift"' in page and "failed in 2 of 4 bin(s)" in page
    assert page.count("data:image/png;base64,") >= len({c.test_key for b in result.bins for c in b.cases
                                                         if c.status.value != "SKIP"})
    assert "<script" not in page


def test_the_cli_runs_a_continuous_test_then_an_incremental_one(tmp_path):
    from click.testing import CliRunner

    from kilele.cli import cli

    make_frame(1000, seed=1).to_csv(tmp_path / "ref.csv", index=False)
    data = timestamped(3, drift_from=2)
    data.iloc[:300].to_csv(tmp_path / "first.csv", index=False)
    data.iloc[250:].to_csv(tmp_path / "more.csv", index=False)  # 50 rows of bin 1 again, and bin 2
    (tmp_path / "model.py").write_text("import numpy as np, pandas as pd\n\ndef predict_df(df):\n"
                                       "    x = pd.to_numeric(df['num_a'], errors='coerce').fillna(0).to_numpy()\n"
                                       "    return 1 / (1 + np.exp(-2 * x))\n")
    args = ["stress", "continuous", "--ref", str(tmp_path / "ref.csv"), "--label-col", "y", "--timestamp-col", "ts",
            "--bin-size", "hour", "--model", str(tmp_path / "model.py"), "--out", str(tmp_path / "out"), "--quiet"]
    first = CliRunner().invoke(cli, args + ["--eval", str(tmp_path / "first.csv")])
    assert first.exit_code == 0, first.output
    assert "continuous test of 2 bin(s)" in first.output and (tmp_path / "out" / "report.html").exists()
    more = CliRunner().invoke(cli, args + ["--eval", str(tmp_path / "more.csv")])
    assert more.exit_code == 0, more.output
    assert "2 bin(s) of 3600 s (3 bin(s) known)" in more.output
    assert len(pd.read_parquet(tmp_path / "out" / "history.parquet")) == 3 * ROWS_PER_BIN  # none counted twice
    bad = CliRunner().invoke(cli, args[:-1] + ["--eval", str(tmp_path / "ref.csv")])
    assert bad.exit_code == 1 and "no column 'ts'" in bad.output
