"""Issue 13, finding 1 in synthesis: the state machines that wait on a run write its run token
beside its log (aws-sdk:s3:putObject.waitForTaskToken), so they may put exactly those keys; the
dispatch functions, which fail a lost job's run task, may read them; nothing wider."""
from __future__ import annotations

import pytest
from test_synth import STAGE, _as_list, _function_id, _role_statements, _state_machines, _synth

from chalicelib.resources import RESOURCES
from chalicelib.services.trial_messages import RUN_TOKEN_KEY_PATTERNS
from chalicelib.workflows.render import load_template


@pytest.fixture(scope="module")
def template():
    return _synth()


def _object_patterns(statements: list[dict], action: str) -> set[str]:
    found = set()
    for st in statements:
        if action not in _as_list(st["Action"]):
            continue
        for resource in _as_list(st["Resource"]):
            if isinstance(resource, dict) and "Fn::Join" in resource:
                found.add(resource["Fn::Join"][1][-1])
    return found


def test_machines_that_wait_on_runs_may_put_run_tokens_only(template) -> None:
    machines = _state_machines(template)
    for spec in RESOURCES.state_machines:
        role_id = machines[f"kilele-{STAGE}-{spec.name}"]["RoleArn"]["Fn::GetAtt"][0]
        puts = _object_patterns(_role_statements(template, role_id), "s3:PutObject")
        expected = {f"/{p}" for p in RUN_TOKEN_KEY_PATTERNS} if "run_token_key" in load_template(spec.template) else set()
        assert puts == expected, spec.name
    assert {"train-worker", "stress-test"} <= {s.name for s in RESOURCES.state_machines
                                               if "run_token_key" in load_template(s.template)}


@pytest.mark.parametrize("handler", ["app.dispatch_trials", "app.batch_job_failed"])
def test_dispatch_functions_may_read_run_tokens(template, handler) -> None:
    function = template.find_resources("AWS::Lambda::Function")[_function_id(template, handler)]
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    reads = _object_patterns(_role_statements(template, role_id), "s3:GetObject")
    assert {f"/{p}" for p in RUN_TOKEN_KEY_PATTERNS} <= reads
