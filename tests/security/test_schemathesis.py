"""A bounded schemathesis pass against the local stack started for real (issue 9, finding 8):
every operation of /openapi.json, with generated valid and invalid input, must answer with a
status the document lists, a body its schema describes, and never a 5xx.

Bounded for CI on 2 cores: at most ``MAX_EXAMPLES`` generated cases per operation and phase,
and ``MAX_SECONDS`` for the whole run (schemathesis stops there, and the test fails only on
failures it found). The run's JUnit report is kept in the test's temporary folder.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from e2e.conftest import SUPERADMIN, StackProcess

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 8
MAX_SECONDS = 150
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"


@pytest.fixture(scope="module")
def fuzzed_stack(tmp_path_factory):
    """A local stack of its own: schemathesis creates users, apps and keys, and bans some."""
    stack = StackProcess(tmp=tmp_path_factory.mktemp("schemathesis-stack"))
    try:
        stack.wait_ready()
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, f"the stack exited with {code}:\n{stack.log.read_text()}"


def api_key(url: str) -> str:
    """A key of the superadmin: every operation is reachable, and the run cannot log it out."""
    token = requests.post(f"{url}/tokens", json={"email": SUPERADMIN[0], "password": SUPERADMIN[1]}, timeout=10)
    token.raise_for_status()
    key = requests.post(f"{url}/api-keys", json={"name": "schemathesis"}, timeout=10,
                        headers={"Authorization": f"Bearer {token.json()['token']}"})
    key.raise_for_status()
    return key.json()["key"]


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzzed_stack, tmp_path):
    report = tmp_path / "schemathesis.xml"
    command = [
        str(SCHEMATHESIS), "run", f"{fuzzed_stack.url}/openapi.json",
        "--header", f"x-api-key: {api_key(fuzzed_stack.url)}",
        "--checks", CHECKS,
        "--phases", "examples,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(MAX_SECONDS),
        "--workers", "2",
        "--seed", "20261201",
        "--no-shrink",
        "--request-timeout", "30",
        # Logging out would end nothing (the run uses a key), stopping all jobs nothing either;
        # banning users and deleting keys it created is in scope.
        "--exclude-path", "/tokens/current",
        "--report", "junit", "--report-junit-path", str(report),
    ]
    # cwd: schemathesis keeps a cache folder where it runs; not in the checkout.
    run = subprocess.run(command, capture_output=True, text=True, timeout=MAX_SECONDS + 120, cwd=tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20000:]
    assert "Server error" not in output and "Response violates schema" not in output, output[-20000:]
