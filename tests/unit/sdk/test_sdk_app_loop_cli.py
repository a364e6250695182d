"""``kilele apps timeline|retrain-policy...`` and the SDK's calls through CliRunner against the fake API."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kilele.cli import cli


@pytest.fixture
def run(tmp_path, monkeypatch, server):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("KILELE_URL", "KILELE_API_KEY", "KILELE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, ["--url", server.url, "--api-key", "k", *args], catch_exceptions=False)


def ok(result):
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_the_retrain_policy_and_the_timeline(server, run):
    policy = {"app": "fraud", "monitors": ["drift"], "dataset": "labelled_captured_traffic", "budget": {},
              "deploy": False, "holdout_dataset_id": None, "retrain": None}
    timeline = [{"time": "2026-01-01T00:00:00+00:00", "step": "breach_seen", "reason": "monitor drift", "data": {}}]
    server.route("PUT", "/apps/fraud/retrain-policy", 200, policy)
    server.route("GET", "/apps/fraud/retrain-policy", 200, policy)
    server.route("DELETE", "/apps/fraud/retrain-policy", 200, {"app": "fraud", "removed": True})
    server.route("GET", "/apps/fraud/timeline", 200, timeline)
    assert ok(run("apps", "retrain-policy", "fraud", "--monitor", "drift")) == policy
    assert server.last("PUT", "/apps/fraud/retrain-policy").json() == {
        "monitors": ["drift"], "dataset": "labelled_captured_traffic", "deploy": False}
    ok(run("apps", "retrain-policy", "fraud", "--monitor", "drift", "--monitor", "model-performance",
           "--dataset", "d-1", "--trials", "5", "--deploy", "--holdout", "d-2"))
    assert server.last("PUT", "/apps/fraud/retrain-policy").json() == {
        "monitors": ["drift", "model-performance"], "dataset": {"dataset_id": "d-1"},
        "budget": {"MODEL_TRIAL_COUNT": 5}, "deploy": True, "holdout_dataset_id": "d-2"}
    assert ok(run("apps", "retrain-policy-show", "fraud")) == policy
    assert ok(run("apps", "timeline", "fraud")) == timeline
    assert ok(run("apps", "retrain-policy-remove", "fraud"))["removed"] is True
    assert server.last().method == "DELETE"
