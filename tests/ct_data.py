"""Timestamped data for continuous-test tests (workflow, e2e): a binary task whose feature ``x``
is shifted by 1.5 σ from a chosen time bin on, and a model file that predicts it.

NannyML's bundled timestamped data sets would do too, but NannyML is not a dependency of the
platform; this is the same kind of data (a reference, then an analysis period in bins), small."""
from __future__ import annotations

import numpy as np
import pandas as pd

MODEL = b'''import numpy as np
import pandas as pd


def predict_df(df):
    x = pd.to_numeric(df["x"], errors="coerce").fillna(0).to_numpy()
    return 1 / (1 + np.exp(-2 * x))
'''
START = pd.Timestamp("2024-04-01", tz="UTC")


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, rows)
    return pd.DataFrame({"x": x, "z": rng.uniform(0, 1, rows), "c": rng.choice(["a", "b", "c"], rows),
                         "y": (rng.uniform(size=rows) < 1 / (1 + np.exp(-2 * x))).astype(int)})


def reference(rows: int = 400) -> pd.DataFrame:
    return frame(rows, seed=1)


def evaluation(bins: int, rows_per_bin: int = 150, drift_from: int | None = None, first_bin: int = 0,
               bin_seconds: int = 86400) -> pd.DataFrame:
    """``bins`` bins of ``rows_per_bin`` rows from bin ``first_bin`` (ISO timestamps in a
    ``timestamp`` column); ``x`` shifted from bin ``drift_from`` on."""
    parts = []
    for b in range(first_bin, first_bin + bins):
        part = frame(rows_per_bin, seed=100 + b, shift=1.5 if drift_from is not None and b >= drift_from else 0.0)
        offsets = np.arange(rows_per_bin) * (bin_seconds // rows_per_bin)
        part["timestamp"] = [(START + pd.Timedelta(seconds=b * bin_seconds + int(o))).isoformat() for o in offsets]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()
