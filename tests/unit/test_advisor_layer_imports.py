"""Issue 13, finding 8: on AWS the advisor's libraries (optuna, numpy, SQLAlchemy, Alembic) are a
layer of the propose Lambda only, so every other entry point must load without them: the API
(app.py) and every workflow handler but propose. The propose path imports them on first use."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADVISOR_LIBRARIES = ("optuna", "numpy", "sqlalchemy", "alembic", "threadpoolctl")

BLOCKED_IMPORTS = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ADVISOR_LIBRARIES!r}:
            raise ImportError("not in this Lambda's asset: " + name)
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED_IMPORTS + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_the_api_and_the_workflow_handlers_load_without_the_advisor_libraries():
    done = _run("import app\nfrom chalicelib.workflows import lambda_entry\n"
                "from chalicelib.advisor import parse_knob_config, Proposal, TrialRecord\n"
                "parse_knob_config({'x': {'type': 'float', 'value_min': 0.0, 'value_max': 1.0, 'is_exp': False}})\n"
                "print('loaded')")
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]


def test_a_proposal_imports_them_and_says_so_when_they_are_missing():
    done = _run("import importlib\nimportlib.import_module('chalicelib.advisor.advisor').gp.gp_draws")
    assert done.returncode != 0 and "not in this Lambda's asset" in done.stderr
