"""Issue 13, finding 6: the tests run on the Lambda's Python (the runtime infra deploys every
function with), so what passes here is what runs on AWS; scripts/_venv.sh makes the venv with it.
python3.11 is no alternative: Lambda blocks creating functions with it since 2026-07-31."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra"))

from kilele_infra.bundling import RUNTIME, runtime_version  # noqa: E402


def test_the_tests_run_on_the_lambda_runtimes_python():
    assert sys.version_info[:2] == runtime_version(), (
        f"the Lambda runs {RUNTIME.name}, the tests Python {sys.version_info.major}.{sys.version_info.minor}: "
        "remove .venv and run scripts/test (scripts/_venv.sh makes it with the runtime's Python)")
