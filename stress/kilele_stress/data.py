"""Reading the data, inferring column types and the model task.

* :func:`read_table` reads CSV (pyarrow's reader) and Parquet from a local path. CSV text columns
  keep what the file says: ``''``, ``'NA'`` or ``'null'`` stay strings there, so the cleanliness
  tests can see mixed null spellings; in numeric columns every null spelling is a null.
* :func:`infer_schema` gives each reference column a :class:`ColumnType` (``categorical_features``
  overrides); :func:`conform` brings a frame to that schema and reports the values that do not
  fit (the Type Check test reads them).
* :func:`infer_task` tells binary / multi-class classification from regression by the label.
"""
from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Data the engine cannot read or use (a missing file, an unknown format, no label column...)."""


class ColumnType(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    TEXT = "text"
    TIMESTAMP = "timestamp"


class ModelTask(StrEnum):
    BINARY = "Binary Classification"
    MULTICLASS = "Multi-class Classification"
    REGRESSION = "Regression"


#: Spellings of "missing" in text columns (compared stripped and lower-cased). '' is not among them:
#: an empty string is its own abnormal input (the Empty String test).
NULL_WORDS = frozenset({"na", "n/a", "nan", "null", "none", "nat", "#n/a", "missing"})
_TRUE, _FALSE = frozenset({"true", "yes", "t", "y"}), frozenset({"false", "no", "f", "n"})
#: A text column with at most this many distinct values (or 5 % of its rows) is categorical.
CATEGORICAL_MAX_DISTINCT = 50
CATEGORICAL_MAX_SHARE = 0.05
#: A text column whose values are numbers this often is a numeric column with bad values in it.
NUMERIC_MAJORITY = 0.9
#: A label with at most this many integer values is a class label, not a regression target.
MAX_CLASSES = 20

PathLike = Union[str, Path]


def read_table(path: PathLike) -> pd.DataFrame:
    """A CSV (``.csv``, ``.tsv``, optionally gzipped) or Parquet file from a local path."""
    text = str(path)
    if "://" in text:
        raise DataError(f"{text}: the engine reads local files; the platform fetches "
                        f"{text.split('://')[0]}:// data before it runs the engine")
    p = Path(text)
    if not p.is_file():
        raise DataError(f"{text}: no such file")
    try:
        if _is_parquet(p):
            return pd.read_parquet(p, engine="pyarrow")
        return _read_csv(p)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 (pyarrow and pandas raise many types; the caller wants one)
        raise DataError(f"{text}: cannot read it ({type(e).__name__}: {e})") from e


def _is_parquet(p: Path) -> bool:
    if p.suffix.lower() in (".parquet", ".pq"):
        return True
    if p.suffix.lower() in (".csv", ".tsv", ".txt", ".gz"):
        return False
    with p.open("rb") as f:  # no telling suffix: Parquet files start with the magic bytes PAR1
        return f.read(4) == b"PAR1"


def _read_csv(p: Path) -> pd.DataFrame:
    import pyarrow.csv as pacsv

    tab = "\t" if ".tsv" in p.name.lower() else ","
    table = pacsv.read_csv(
        p, parse_options=pacsv.ParseOptions(delimiter=tab),
        # Text columns keep '', 'NA', 'null' as written (mixed null spellings are a test).
        convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    # Datetimes as datetime64, not Python objects: the timestamp column is filtered by time bin.
    return table.to_pandas(date_as_object=False)


def is_text(s: pd.Series) -> bool:
    """Whether ``s`` holds strings (pandas' ``str`` dtype, or an object column)."""
    return pd.api.types.is_string_dtype(s.dtype) or s.dtype == object


def as_text(s: pd.Series) -> pd.Series:
    """``s`` as a ``str`` Series: its string values, everything else (numbers, None) NaN.

    Cheap for ``str`` columns (pandas 3's default); an ``object`` column is inspected value by
    value, so callers pass distinct values (:func:`distinct`) rather than whole columns.
    """
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return s
    if s.dtype == object:
        return s.where(s.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False).astype(bool)).astype("str")
    return pd.Series(np.nan, index=s.index, dtype="str")


def distinct(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The distinct non-null values of ``s`` (same dtype) and how many rows hold each: string
    checks run once per distinct value, whatever the number of rows."""
    counts = s.value_counts(dropna=True, sort=False)
    return pd.Series(counts.index, dtype=s.dtype if s.dtype != bool else object), counts.to_numpy()


#: A number written as text: "12", "-3.5", " .5 ", "1e-3".
NUMBER_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def looks_numeric(values: pd.Series) -> np.ndarray:
    """Which values are numbers or read as numbers (booleans are not numbers)."""
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        import pyarrow as pa
        import pyarrow.compute as pc
        hits = pc.match_substring_regex(pa.array(values, from_pandas=True), NUMBER_PATTERN)
        return pc.fill_null(hits, False).to_numpy(zero_copy_only=False)
    if values.dtype == object:
        number = values.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                            and not pd.isna(v), na_action="ignore").fillna(False).to_numpy(dtype=bool)
        text = as_text(values)
        return number | (looks_numeric(text) if text.notna().any() else np.zeros(len(values), dtype=bool))
    return np.full(len(values), pd.api.types.is_numeric_dtype(values.dtype) and not
                   pd.api.types.is_bool_dtype(values.dtype))


def is_null_word(values: pd.Series) -> np.ndarray:
    """Which values spell "missing" ('NA', 'null', 'None'…) — not NaN itself, not ''."""
    if not is_text(values):
        return np.zeros(len(values), dtype=bool)
    return as_text(values).str.strip().str.lower().isin(NULL_WORDS).to_numpy(dtype=bool)


def is_blank(values: pd.Series) -> np.ndarray:
    """Which values are strings of nothing but white space ('' included)."""
    return as_text(values).str.strip().eq("").fillna(False).to_numpy(dtype=bool)


def null_mask(s: pd.Series, values: Optional[pd.Series] = None) -> np.ndarray:
    """Rows of ``s`` that are missing: NaN/None, or a null spelling ('NA', 'null'…) in text.
    ``values``: the distinct values of ``s``, if already known."""
    mask = s.isna().to_numpy(dtype=bool, copy=True)
    if is_text(s):
        if values is None:
            values, _ = distinct(s)
        words = values[is_null_word(values)]
        if len(words):
            mask |= s.isin(words.tolist()).to_numpy(dtype=bool)
    return mask


def _shares(values: pd.Series, counts: np.ndarray) -> tuple[float, float, int, int]:
    """(share of booleans, share of numbers, distinct count, rows) among the non-null values of
    a text/object column, from its distinct values and their counts."""
    keep = ~is_null_word(values)
    values, counts = values[keep], counts[keep]
    total = int(counts.sum())
    if not total:
        return 0.0, 0.0, 0, 0
    is_bool = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool) \
        if values.dtype == object else np.zeros(len(values), dtype=bool)
    words = as_text(values).str.strip().str.lower().isin(_TRUE | _FALSE).to_numpy(dtype=bool)
    return (float(counts[is_bool | words].sum() / total), float(counts[looks_numeric(values)].sum() / total),
            len(values), total)


def _plain_number(v: object) -> object:
    if isinstance(v, bool):
        return np.nan  # True is a boolean, not the number 1
    return v.strip() if isinstance(v, str) else v


def infer_column_type(s: pd.Series, distinct_cache: Optional[dict] = None, name: object = None) -> ColumnType:
    """The type of one reference column (see the module's docstring)."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return ColumnType.BOOLEAN
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return ColumnType.TIMESTAMP
    if pd.api.types.is_numeric_dtype(s.dtype):
        return ColumnType.NUMERIC
    found = distinct(s)
    if distinct_cache is not None:
        distinct_cache[name] = found
    bool_share, numeric_share, n_distinct, rows = _shares(*found)
    # Booleans first: True would otherwise read as the number 1, and "yes"/"no" as categories.
    if bool_share == 1.0:
        return ColumnType.BOOLEAN
    if numeric_share >= NUMERIC_MAJORITY:
        return ColumnType.NUMERIC
    if n_distinct <= max(CATEGORICAL_MAX_DISTINCT, CATEGORICAL_MAX_SHARE * rows):
        return ColumnType.CATEGORICAL
    return ColumnType.TEXT


def infer_schema(df: pd.DataFrame, exclude: Iterable[str] = (),
                 categorical_features: Optional[Iterable[str]] = None,
                 distinct_cache: Optional[dict] = None) -> dict[str, ColumnType]:
    """Each column of the reference ``df`` (but ``exclude``) → its type; ``categorical_features``
    are categorical whatever their values look like. ``distinct_cache``: a dict that receives
    the distinct values computed on the way (column → :func:`distinct`), for reuse."""
    forced = set(categorical_features or ())
    missing = forced - set(df.columns)
    if missing:
        raise DataError(f"categorical_features names columns the reference does not have: {sorted(missing)}")
    skip = set(exclude)
    return {col: ColumnType.CATEGORICAL if col in forced else infer_column_type(df[col], distinct_cache, col)
            for col in df.columns if col not in skip}


def conform(df: pd.DataFrame, schema: dict[str, ColumnType]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``df`` with its columns converted to ``schema``'s types, and per column the rows whose
    value did not fit (a word in a numeric column…), which become nulls in the returned frame.

    Columns already of the right type are not copied, so this is cheap on clean data.
    """
    out: dict[str, pd.Series] = {}
    violations: dict[str, np.ndarray] = {}
    for col, kind in schema.items():
        if col not in df.columns:
            continue
        s = df[col]
        converted, bad = _conform_column(s, kind)
        if converted is not s:
            out[col] = converted
        if bad is not None and bad.any():
            violations[col] = bad
    if not out:
        return df, violations
    frame = df.copy(deep=False)
    for col, values in out.items():
        frame[col] = values
    return frame, violations


def _conform_column(s: pd.Series, kind: ColumnType) -> tuple[pd.Series, Optional[np.ndarray]]:
    dtype = s.dtype
    if kind == ColumnType.NUMERIC:
        if pd.api.types.is_bool_dtype(dtype):
            return s.astype("float64"), None
        if pd.api.types.is_numeric_dtype(dtype):
            return s, None
        missing = null_mask(s)
        values = pd.to_numeric(s.map(_plain_number, na_action="ignore").where(~missing), errors="coerce")
        return values.astype("float64"), (values.isna().to_numpy() & ~missing)
    if kind == ColumnType.TIMESTAMP:
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return s, None
        missing = null_mask(s)
        values = pd.to_datetime(s.where(~missing), errors="coerce", format="mixed")
        return values, (values.isna().to_numpy() & ~missing)
    if kind == ColumnType.BOOLEAN:
        if pd.api.types.is_bool_dtype(dtype):
            return s, None
        missing = null_mask(s)
        words = as_text(s).str.strip().str.lower() if is_text(s) else s.astype(str).str.lower()
        values = pd.Series(np.where(words.isin(_TRUE | {"1", "1.0"}), True,
                                    np.where(words.isin(_FALSE | {"0", "0.0"}), False, None)),
                           index=s.index, dtype=object)
        is_bool = s.map(lambda v: isinstance(v, (bool, np.bool_)), na_action="ignore").fillna(False).astype(bool)
        values = values.where(~is_bool, s).where(~missing, None)
        return values, (values.isna().to_numpy() & ~missing)
    return s, None  # categorical and text columns compare values as they are


def infer_task(labels: pd.Series) -> ModelTask:
    """The model task from a label column: two values → binary; a few integer or text values →
    multi-class; anything else numeric → regression."""
    values = labels.dropna()
    if values.empty:
        raise DataError(f"the label column {labels.name!r} has no values")
    distinct = values.nunique()
    if distinct <= 2:
        return ModelTask.BINARY
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        as_float = values.to_numpy(dtype=float)
        if distinct <= MAX_CLASSES and np.all(np.mod(as_float, 1) == 0):
            return ModelTask.MULTICLASS
        return ModelTask.REGRESSION
    return ModelTask.MULTICLASS


def class_labels(labels: pd.Series) -> list:
    """The classes of a classification label, sorted (the order of a multi-class model's columns,
    as scikit-learn's ``classes_``)."""
    values = labels.dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:  # mixed types: a stable order all the same
        return sorted(values, key=str)


def encode_classes(labels: pd.Series, classes: list) -> np.ndarray:
    """Class indices into ``classes``; -1 for a missing label or one the reference never had."""
    return pd.Categorical(labels, categories=classes).codes.astype(np.int64)
