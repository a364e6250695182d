"""End-to-end (issue 12 item 7): the whole loop on the local stack, the scheduler's clock driven by
the test. An app serves v1 (a tree trained where ``x0 > 0`` is the class); its traffic drifts (``x0``
moves by 3 and the class is now ``x0 > 3``); the scheduled continuous test on its captured traffic
fails the drift monitor; the app's retrain policy starts v2 on the labelled captured traffic; v2
beats v1 on the holdout and is deployed, and the app's continuous test moves to it (a new CT
instance whose reference is the data v2 was trained on); the next scheduled test, on new traffic
of the drifted kind with its labels, passes -- drift and model performance. Every step is on the
app's timeline with its reason, read through the API, the SDK and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import requests

import ct_data

from .conftest import EXAMPLES, KILELE, SUPERADMIN, developers

pytestmark = pytest.mark.slow

APP = "loop"
HOUR = 3600
TRAFFIC = 120  # queries served between two firings (small: the CI budget is tight)
#: The loop's steps, in order, from the breach to the deployed version's continuous test.
LOOP_STEPS = ["breach_seen", "retrain_started", "retrain_finished", "evaluation_started", "evaluation_scores",
              "deployed", "reference_moved"]


def rows(n: int, seed: int, drifted: bool) -> pd.DataFrame:
    """``x0`` (the signal) and ``x1`` (noise); the class is ``x0 > 0``, or ``x0 > 3`` once drifted."""
    rng = np.random.default_rng(seed)
    shift = 3.0 if drifted else 0.0
    x0, x1 = rng.normal(shift, 1, n).round(4), rng.normal(0, 1, n).round(4)
    return pd.DataFrame({"x0": x0, "x1": x1, "target": (x0 > shift).astype(int)})


def serve(client, frame: pd.DataFrame) -> None:
    """Predict the rows as the app's traffic (captured at 100 %), then send their labels."""
    labels = {}
    for start in range(0, len(frame), 100):
        part = frame.iloc[start:start + 100]
        answer = client.predict_with_ids(APP, queries=part[["x0", "x1"]].values.tolist())
        labels.update(zip(answer["query_ids"], part["target"].tolist()))
    assert client.send_labels(APP, labels)["received"] == len(frame)


def wait(condition, what, timeout: float = 150):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def traffic_rows(instance) -> int:
    """How many queries of the app's traffic the instance tested (its bins after the seeded day)."""
    return sum(b["metrics"]["num_inputs"] for b in instance.list_bins() if b["time_bin_start"] > "2025")


def settled(client, instance_id: str) -> dict:
    """The instance once its running job (started by a firing) recorded its bins."""
    instance = client.get_ct_instance(instance_id)
    wait(lambda: instance.refresh()["running_job_id"] is None, f"the job of CT instance {instance_id}")
    assert instance.info["error"] is None, instance.info
    return instance


# Its own waits bound each step (the loop alone up to 300 s); pytest's default 300 s for the whole
# test cut it short in a CI run where this test shared its xdist worker with other stacks.
@pytest.mark.timeout(900)
def test_drift_retrains_deploys_the_better_model_and_the_next_ct_passes(stack_factory, tmp_path):
    # Flush 0: captured queries are written at the end of each predict request (by default every
    # 60 s), so the firing right after finds them without waiting.
    stack = stack_factory(KILELE_LOCAL_SCHEDULER_CLOCK="manual", KILELE_CAPTURE_FLUSH_SECONDS="0")
    started = time.monotonic()
    phases = {}

    def phase(name: str) -> None:  # where the time goes (CI's budget is tight)
        phases[name] = round(time.monotonic() - started, 1)
    admin = stack.client()
    admin.login(*SUPERADMIN)
    client = developers(stack)["MODEL_DEVELOPER"]
    files = {"train": rows(200, 1, False), "val": rows(100, 2, False), "holdout": rows(150, 3, True)}
    datasets = {}
    for name, frame in files.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        datasets[name] = client.create_dataset(name=f"loop-{name}", task="TABULAR_CLASSIFICATION",
                                               dataset_path=str(tmp_path / f"{name}.csv"))
    tree = client.create_model(name="loop-tree", task="TABULAR_CLASSIFICATION",
                               model_file_path=str(EXAMPLES / "models" / "sk_decision_tree.py"),
                               model_class="SkDecisionTree", dependencies={"scikit-learn": "1.9.1"})
    client.create_train_job(app=APP, task="TABULAR_CLASSIFICATION", train_dataset_id=datasets["train"]["id"],
                            val_dataset_id=datasets["val"]["id"], budget={"MODEL_TRIAL_COUNT": 1}, models=[tree["id"]])
    assert client.wait_for_train_job(APP, timeout=180, poll_rate_sec=1)["status"] == "STOPPED"
    client.register_application(APP, "floats", "unknown", 10_000_000)
    client.set_capture(APP, 100)
    client.create_inference_job(APP)
    phase("v1 trained and served")

    # The app's CT: v1 against its training data, seeded with a day of undrifted traffic.
    history = rows(120, 4, False)
    history["timestamp"] = [(ct_data.START + pd.Timedelta(minutes=10 * i)).isoformat() for i in range(len(history))]
    history.to_csv(tmp_path / "history.csv", index=False)
    job = client.start_continuous_test_from_reference(
        {"run_name": "loop", "data_info": {"label_col": "target", "ref_path": f"kilele://datasets/{datasets['train']['id']}",
                                           "eval_path": str(tmp_path / "history.csv")},
         "model_info": {"app": APP}, "continuous_info": {"timestamp_col": "timestamp", "bin_size": "day"}})
    first_id = job.info["ct_instance_id"]  # the start's answer names it
    assert job.get_status(wait_until_finish=True, poll_rate_sec=1)["status"] == "SUCCEEDED", job.get_logs()
    first = client.get_ct_instance(first_id)
    phase("CT from reference")
    assert first.info["active"] and not first.list_breaches()
    first.set_schedule("rate(1 hour)", {"app": APP})
    client.set_retrain_policy(APP, ["drift"], dataset="labelled_captured_traffic", budget={"MODEL_TRIAL_COUNT": 1},
                              deploy=True, holdout_dataset_id=datasets["holdout"]["id"])

    # The traffic drifts; the next firing tests it and the drift monitor breaches.
    serve(client, rows(TRAFFIC, 5, True))
    assert [f["target"] for f in admin.advance_scheduler_clock(HOUR)["fired"]] == ["run_incremental_continuous_test"]
    [run] = first.get_schedule()["runs"]
    assert run["status"] == "STARTED", run
    settled(client, first.info["ct_instance_id"])
    assert traffic_rows(first) == TRAFFIC
    assert {b["monitor_id"] for b in first.list_breaches()} >= {"drift"}
    phase("drifted traffic tested")

    # The loop: retrain on the labelled traffic, score both versions on the holdout, deploy v2,
    # and move the app's continuous test to it.
    wait(lambda: [e for e in client.get_app_timeline(APP) if e["step"] in
                             ("reference_moved", "reference_move_failed", "kept", "deploy_failed", "retrain_failed",
                              "retrain_errored")],
         lambda: f"the loop to end (phases {phases}; timeline {[e['step'] for e in client.get_app_timeline(APP)]})",
         timeout=300)
    phase("retrained, scored, deployed")
    steps = client.get_app_timeline(APP)
    assert [e["step"] for e in steps if e["step"] in LOOP_STEPS] == LOOP_STEPS, steps
    by_step = {e["step"]: e for e in steps}
    assert all(e["reason"] for e in steps), steps
    assert "monitor drift breached" in by_step["breach_seen"]["reason"]
    assert "the labelled captured traffic" in by_step["retrain_started"]["reason"]
    scores = by_step["evaluation_scores"]["data"]
    assert scores["new"]["accuracy"] > scores["serving"]["accuracy"] + 0.2, scores
    assert "v2 beats the serving version" in by_step["deployed"]["reason"]
    moved = by_step["reference_moved"]["data"]
    retrained_on = by_step["retrain_started"]["data"]["train_dataset_id"]
    assert moved["previous_ct_instance_id"] == first.info["ct_instance_id"]
    assert moved["reference"] == f"kilele://datasets/{retrained_on}" and moved["active"] is True
    second = client.get_active_ct_instance_for_project(first.info["project_id"])
    assert second.info["ct_instance_id"] == moved["ct_instance_id"] and not first.refresh()["active"]
    assert second.get_schedule()["source"] == {"app": APP}

    # New traffic of the drifted kind, labelled: the next firing tests it against v2's training data.
    serve(client, rows(TRAFFIC, 6, True))
    admin.advance_scheduler_clock(HOUR)
    [run] = second.get_schedule()["runs"]
    assert run["status"] == "STARTED", run
    settled(client, second.info["ct_instance_id"])
    assert traffic_rows(second) == TRAFFIC  # only what came after the hand-over
    tested = wait(lambda: [e for e in client.get_app_timeline(APP) if e["step"] == "deployed_version_tested"],
                  "the deployed version's first test on the timeline", timeout=30)[0]
    assert tested["data"]["passed"] is True and "no monitor breached" in tested["reason"], tested
    assert second.list_breaches() == []
    [tested] = second.list_bins()
    metrics = tested["metrics"]
    assert metrics["category_worst:Drift"] < 2 and metrics["model_performance:accuracy"] > 0.9, metrics
    assert first.list_breaches() and len(first.list_bins()) == 2  # the old instance keeps its results
    phase("next CT passed")

    # The same timeline through the API and the CLI.
    key = client.create_api_key("loop-e2e")["key"]
    api = requests.get(f"{stack.url}/apps/{APP}/timeline", headers={"x-api-key": key}, timeout=30)
    assert api.status_code == 200 and api.json() == client.get_app_timeline(APP)
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith("KILELE_")},
                   "HOME": str(tmp_path), "KILELE_URL": stack.url}
    cli = subprocess.run([str(KILELE), "--api-key", key, "apps", "timeline", APP], capture_output=True, text=True,
                         env=environment, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert [e["step"] for e in json.loads(cli.stdout)] == [e["step"] for e in api.json()]
    whole = LOOP_STEPS + ["deployed_version_tested"]  # from the breach to the deployed version passing
    assert [e["step"] for e in api.json() if e["step"] in whole] == whole
    for version in (1, 2):
        client.stop_inference_job(APP, version)
    print("phases (s since the stack was up):", phases)
    assert stack.stop() == 0  # now, not at the session's end: its workers would idle beside other tests
