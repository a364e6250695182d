"""A bounded schemathesis pass against the local stack started for real (issue 9, finding 8):
every operation of /openapi.json, with generated valid and invalid input, must answer with a
status the document lists, a body its schema describes, and never a 5xx; and a request the
document allows must be accepted (positive_data_acceptance): its schemas accept exactly what
the routes accept. Which refusals of an allowed request are legitimate (what exists, content
no schema can describe) is in schemathesis.toml beside this file, and the few rules no JSON
schema can state in schemathesis_hooks.py.

Bounded for CI on 2 cores: at most ``MAX_EXAMPLES`` generated cases per operation and phase,
and ``MAX_SECONDS`` for the whole run (schemathesis stops there, and the test fails only on
failures it found). The run's JUnit report is kept in the test's temporary folder.

Made-up ids mostly get 404s, whose bodies say little about the document's 2xx schemas; so a
dataset, a model, a project and an app are made first, and half of the generated values of
those path parameters are their ids (schemathesis dictionaries, in the run's copy of the config):
reads, updates, predictions and deletions of things that exist are checked against the document.
"""
from __future__ import annotations

import base64
import json
import os
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
CHECKS = ("not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance,"
          "positive_data_acceptance")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def fuzzed_stack(tmp_path_factory):
    """A local stack of its own: schemathesis creates users, apps and keys, and bans some."""
    # Generated managed images are really built: pip gets no index (only this machine's wheel
    # folder), so made-up package names never reach the package registry.
    stack = StackProcess(env={"PIP_NO_INDEX": "1"}, tmp=tmp_path_factory.mktemp("schemathesis-stack"))
    try:
        stack.wait_ready()
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, f"the stack exited with {code}:\n{stack.log.read_text()}"


def credentials(url: str) -> tuple[str, str]:
    """A session token and a key of the superadmin: every operation is reachable, and the run
    cannot log them out. Both, so that schemathesis sends a valid bearer token rather than
    making one up (an operation whose every case got 401 was not tested beyond its auth)."""
    token = requests.post(f"{url}/tokens", json={"email": SUPERADMIN[0], "password": SUPERADMIN[1]}, timeout=10)
    token.raise_for_status()
    bearer = token.json()["token"]
    key = requests.post(f"{url}/api-keys", json={"name": "schemathesis"}, timeout=10,
                        headers={"Authorization": f"Bearer {bearer}"})
    key.raise_for_status()
    return bearer, key.json()["key"]


_MODEL = b"from kilele.model import BaseModel\n\n\nclass Seeded(BaseModel):\n    pass\n"


def seed(url: str, bearer: str) -> dict[str, list[str]]:
    """Resources that exist, by the path parameter that names them."""
    def post(path: str, body: dict) -> dict:
        response = requests.post(f"{url}{path}", json=body, timeout=30, headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 201, (path, response.status_code, response.text)
        return response.json()

    dataset = post("/datasets", {"name": "seeded", "task": "TABULAR_CLASSIFICATION", "target_column": "y",
                                 "content_base64": base64.b64encode(b"a,b,y\n1,2,0\n3,4,1\n5,6,0\n").decode()})
    model = post("/models", {"name": "seeded", "task": "TABULAR_CLASSIFICATION", "model_class": "Seeded",
                             "model_file_base64": base64.b64encode(_MODEL).decode()})
    project = post("/projects", {"name": "seeded"})
    app = post("/apps", {"name": "seeded", "input_type": "floats", "default_output": [0.5], "slo_micros": 100_000})
    return {"dataset_id": [dataset["id"]], "model_id": [model["id"]], "project_id": [project["project_id"]],
            "app": [app["name"]]}


def run_config(folder: Path, ids: dict[str, list[str]]) -> Path:
    """schemathesis.toml plus a dictionary per seeded path parameter, drawn half of the time."""
    lines = [(HERE / "schemathesis.toml").read_text(), "", "# Added by test_schemathesis.py: ids that exist."]
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in ids]
    config = folder / "schemathesis.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzzed_stack, tmp_path):
    report = tmp_path / "schemathesis.xml"
    bearer, key = credentials(fuzzed_stack.url)
    config = run_config(tmp_path, seed(fuzzed_stack.url, bearer))
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{fuzzed_stack.url}/openapi.json",
        "--header", f"x-api-key: {key}", "--header", f"Authorization: Bearer {bearer}",
        "--checks", CHECKS,
        "--phases", "examples,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(MAX_SECONDS),
        # One worker: with two, hypothesis' threads parse lambdas' source at once, which Python
        # 3.11.7 can fail ("AST constructor recursion depth mismatch", cpython gh-106905): the
        # run ended in a Runtime Error once. The run is bounded by time, not by cases.
        "--workers", "1",
        "--seed", "20261201",
        "--no-shrink",
        "--request-timeout", "30",
        # Logging out would end nothing (the run uses a key), stopping all jobs nothing either;
        # banning users and deleting keys it created is in scope.
        "--exclude-path", "/tokens/current",
        "--report", "junit", "--report-junit-path", str(report),
    ]
    # cwd: schemathesis keeps a cache folder where it runs; not in the checkout.
    # The hooks import chalicelib (the password policy, the request schemas): the repository on the path.
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": str(HERE / "schemathesis_hooks.py"),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(command, capture_output=True, text=True, timeout=MAX_SECONDS + 120, cwd=tmp_path,
                         env=environment)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20000:]
    assert "Configuration:" in output and "schemathesis.toml" in output, output[-5000:]
    for failure in ("Server error", "Response violates schema", "Schema-valid request rejected"):
        assert failure not in output, output[-20000:]
    print(output[output.rfind("SUMMARY"):])  # cases, phases and warnings of a passing run (pytest -s / -rP)
