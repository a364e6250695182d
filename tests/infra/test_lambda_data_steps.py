"""Issue 12 on AWS: the Lambdas' asset ships no pandas, numpy or pyarrow (requirements.txt; numpy
is the propose Lambda's layer only), so a scheduled continuous test's firing, the retrain loop's
holdout comparison and its retrain on labelled captured traffic must run without them -- the data
is read in the worker's jobs.

The Lambdas' entry points are imported, and those steps' tests (the firing on traffic and on a
prefix, the comparison deciding deploy or keep, the labelled traffic's files handed to a dataset
job and the train job started on its verdict) run, in a process where importing any of them fails
as it would in the asset: a step that reached for pandas again fails here."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Not in the API/schedule/workflow Lambdas' asset (the worker image has them: kilele_stress too).
DATA_LIBRARIES = ("pandas", "numpy", "pyarrow", "kilele_stress", "scipy", "sklearn")

BLOCKED = f"""
import sys
class NotInTheAsset:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DATA_LIBRARIES!r}:
            raise ImportError("not in the Lambda asset: " + name)
sys.meta_path.insert(0, NotInTheAsset())
"""

STEPS = ["tests/unit/services/test_ct_schedules.py", "tests/unit/services/test_retrain_deploy.py",
         # A retrain on labelled captured traffic: a listing, a manifest, a dataset job, its verdict.
         "tests/unit/services/test_retrain_loop_lambda.py",
         # A deployed retrain taking over the app's continuous test (in the listener of the record step).
         "tests/unit/services/test_ct_handover.py"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_the_asset_lists_none_of_the_data_libraries():
    requirements = (ROOT / "requirements.txt").read_text().lower()
    names = {line.split("==")[0].split(">")[0].strip() for line in requirements.splitlines()
             if line.strip() and not line.startswith(("#", "-r"))}
    assert not names & {"pandas", "numpy", "pyarrow", "scipy", "scikit-learn"}, names


def test_the_firing_the_holdout_comparison_and_the_captured_dataset_run_without_pandas():
    done = _run("import app\nfrom chalicelib.workflows import lambda_entry, schedule_handler\n"
                "import pytest\n"
                f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *{STEPS!r}]))")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert " passed" in done.stdout and " failed" not in done.stdout and "skipped" not in done.stdout, \
        done.stdout[-2000:]


def test_the_block_is_real():
    """The same process cannot import pandas (else the test above would prove nothing)."""
    done = _run("import pandas")
    assert done.returncode != 0 and "not in the Lambda asset: pandas" in done.stderr
