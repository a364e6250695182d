"""Kilele's stress-test engine: RIME's data and model tests on tabular data.

A pure library: DataFrames (or local CSV/Parquet paths) and a model in, results out, no AWS I/O.
See ``stress/README.md`` for the interfaces (``Context``, ``register``, ``TestCase``, the result
DataFrames) that further test categories and the HTML report build on.
"""
from kilele_stress.config import ConfigError, TestRunConfig, parse_config
from kilele_stress.continuous import ContinuousTestResult, run_continuous_test
from kilele_stress.core import (Category, Context, Severity, Status, TestCase, Thresholds, combine, grade, register,
                                registry)
from kilele_stress.data import ColumnType, DataError, ModelTask, read_table
from kilele_stress.model import ModelError, load_model_file
from kilele_stress.results import StressTestResult
from kilele_stress.run import run_stress_test

__all__ = ["run_stress_test", "StressTestResult", "run_continuous_test", "ContinuousTestResult", "parse_config", "TestRunConfig", "ConfigError", "DataError",
           "ModelError", "Context", "TestCase", "Thresholds", "Status", "Severity", "Category", "grade", "combine",
           "register", "registry", "ColumnType", "ModelTask", "read_table", "load_model_file"]
