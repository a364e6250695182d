"""Reading CSV and Parquet, column types from the reference, the model task from the label."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kilele_stress.data import (ColumnType, DataError, ModelTask, conform, infer_schema, infer_task, null_mask,
                                read_table)


def _frame() -> pd.DataFrame:
    n = 300
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "amount": rng.normal(100, 10, n).round(2),
        "age": rng.integers(18, 90, n),
        "city": rng.choice(["Nairobi", "Mombasa", "Kisumu"], n),
        "vip": rng.uniform(size=n) < 0.2,
        "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        "comment": [f"free text number {i} about things" for i in range(n)],
        "zip": rng.choice([100, 200, 300], n),
    })


def test_csv_keeps_text_null_spellings_and_types(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("num,word,flag,day\n1.5,NA,true,2024-01-01\n,null,false,2024-01-02\n3,,true,2024-01-03\n"
                    "4,cat,false,2024-01-04\n")
    df = read_table(path)
    assert pd.api.types.is_float_dtype(df["num"]) and np.isnan(df["num"][1])
    assert df["word"].tolist() == ["NA", "null", "", "cat"]  # written spellings, not NaN
    assert df["flag"].dtype == bool
    assert pd.api.types.is_datetime64_any_dtype(df["day"])
    assert null_mask(df["word"]).tolist() == [True, True, False, False]  # '' is the Empty String test's


def test_parquet_and_csv_give_the_same_schema(tmp_path):
    df = _frame()
    df.to_parquet(tmp_path / "d.parquet")
    df.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "noext").write_bytes((tmp_path / "d.parquet").read_bytes())
    a, b, c = (read_table(tmp_path / n) for n in ("d.parquet", "d.csv", "noext"))
    expected = {"amount": "numeric", "age": "numeric", "city": "categorical", "vip": "boolean",
                "when": "timestamp", "comment": "text", "zip": "numeric"}
    for frame in (a, b, c):
        assert {k: v.value for k, v in infer_schema(frame).items()} == expected
    assert len(b) == len(df)


def test_categorical_features_override_and_exclusions():
    schema = infer_schema(_frame(), exclude=["when"], categorical_features=["zip"])
    assert schema["zip"] == ColumnType.CATEGORICAL and "when" not in schema
    with pytest.raises(DataError, match="categorical_features"):
        infer_schema(_frame(), categorical_features=["nope"])


def test_numbers_written_as_text_are_numeric_and_junk_is_reported():
    ref = pd.DataFrame({"x": [str(i) for i in range(200)], "b": ["yes", "no"] * 100})
    schema = infer_schema(ref)
    assert schema == {"x": ColumnType.NUMERIC, "b": ColumnType.BOOLEAN}
    ev = pd.DataFrame({"x": ["1", "oops", "3", None], "b": ["yes", "maybe", "no", "NA"]})
    typed, bad = conform(ev, schema)
    assert typed["x"].tolist()[0] == 1.0 and np.isnan(typed["x"][1])
    assert bad["x"].tolist() == [False, True, False, False]
    assert bad["b"].tolist() == [False, True, False, False]


def test_conform_does_not_copy_clean_data():
    df = _frame()
    typed, bad = conform(df, infer_schema(df))
    assert typed is df and bad == {}


@pytest.mark.parametrize("labels,task", [
    ([0, 1] * 50, ModelTask.BINARY), (["yes", "no"] * 50, ModelTask.BINARY), ([True, False] * 50, ModelTask.BINARY),
    ([0, 1, 2] * 50, ModelTask.MULTICLASS), (["a", "b", "c", "d"] * 25, ModelTask.MULTICLASS),
    (list(np.linspace(0, 1, 100)), ModelTask.REGRESSION), (list(range(100)), ModelTask.REGRESSION),
])
def test_model_task_from_the_label(labels, task):
    assert infer_task(pd.Series(labels, name="y")) == task


def test_unreadable_data_names_the_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="fetches s3://"):
        read_table("s3://bucket/x.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read it"):
        read_table(tmp_path / "bad.parquet")
