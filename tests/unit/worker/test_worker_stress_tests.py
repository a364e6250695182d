"""The ``stress_test`` kind end to end through the worker: moto's Step Functions sends the
task-token message, the worker downloads the data and the model file, runs the engine in the
sandboxed model process, uploads the results (Parquet, the JSON tables, the report) and answers
with a summary; a model file that does not import fails the run with error.json naming it."""
from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from worker_harness import BUCKET

MODEL = """\
import numpy as np


def predict_df(df):
    return 1.0 / (1.0 + np.exp(-(df["x1"].to_numpy() - df["x2"].to_numpy())))
"""


def csv(seed: int, n: int = 300) -> bytes:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 - x2 + rng.normal(scale=0.5, size=n) > 0).astype(int)
    colour = rng.choice(["red", "green", "blue"], size=n)
    rows = ["x1,x2,colour,y"] + [f"{a:.5f},{b:.5f},{c},{t}" for a, b, c, t in zip(x1, x2, colour, y)]
    return ("\n".join(rows) + "\n").encode()


def start(platform, model: str | None = MODEL, **config_changes) -> tuple[dict, str, dict]:
    job_id = "st-" + uuid.uuid4().hex[:10]
    inputs = f"stress-inputs/u1/{job_id}"
    platform.s3.put_object(Bucket=BUCKET, Key=f"{inputs}/ref.csv", Body=csv(1))
    platform.s3.put_object(Bucket=BUCKET, Key=f"{inputs}/eval.csv", Body=csv(2))
    if model is not None:
        platform.s3.put_object(Bucket=BUCKET, Key=f"{inputs}/model.py", Body=model.encode())
    prefix = f"stress/{job_id}/"
    config = {"run_name": "worker test", "data_info": {"label_col": "y", "ref_path": "ref.csv", "eval_path": "eval.csv"},
              "model_info": {"path": "model.py"} if model is not None else {}, "random_seed": 1, **config_changes}
    fields = {
        "kind": "stress_test", "id": job_id, "project_id": "p1", "test_run_id": "run-" + job_id, "bucket": BUCKET,
        "ref_key": f"{inputs}/ref.csv", "eval_key": f"{inputs}/eval.csv",
        "model_key": f"{inputs}/model.py" if model is not None else None, "config": config,
        "results_prefix": prefix, "logs_key": prefix + "logs.txt", "error_key": prefix + "error.json",
        "claim_key": prefix + "claim.json", "timeout_seconds": 120, "memory_limit_mb": 8000, "heartbeat_seconds": 10,
    }
    arn = platform.sfn.start_execution(stateMachineArn=platform.state_machine_arn, name=job_id,
                                       input=json.dumps({"trial": fields}))["executionArn"]
    message = platform.receive_message()
    assert message["trial"]["id"] == job_id
    return message, arn, fields


def read(platform, key: str) -> bytes:
    return platform.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_a_stress_test_runs_the_engine_and_uploads_its_results(platform, run_worker):
    message, arn, fields = start(platform)
    assert run_worker(message) == 0
    described = platform.wait_execution(arn)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])["result"]
    assert output["test_run_id"] == fields["test_run_id"] and output["num_test_cases"] > 10
    assert output["results_prefix"] == fields["results_prefix"] and set(output["status_counts"]) >= {"pass"}
    prefix = fields["results_prefix"]
    cases = json.loads(read(platform, prefix + "test_cases.json"))
    assert cases["columns"][:3] == ["test_run_id", "features", "test_batch_type"]
    assert len(cases["records"]) == output["num_test_cases"]
    assert {r["test_run_id"] for r in cases["records"]} == {fields["test_run_id"]}
    run = json.loads(read(platform, prefix + "test_run.json"))
    assert len(run["records"]) == 1 and run["records"][0]["project_id"] == "p1"
    assert read(platform, prefix + "test_cases.parquet")[:4] == b"PAR1"
    assert read(platform, prefix + "test_run.parquet")[:4] == b"PAR1"
    if output["has_report"]:
        assert b"<html" in read(platform, prefix + "report.html")[:2000].lower()
    log = read(platform, fields["logs_key"]).decode()
    assert "the engine starts" in log and "stress test done" in log
    assert "CPU rate limit none" in log  # no cpu_limit_millicores in this message


def test_the_cpu_limit_is_applied_to_the_model_process(platform, run_worker):
    """cpu_limit_millicores (twice the job's cpu_request_millicores) caps the model process; the
    log says how (a cgroup quota here, whole cores where no cgroup can be made)."""
    message, arn, fields = start(platform)
    message["trial"]["cpu_limit_millicores"] = 1500
    assert run_worker(message) == 0
    assert platform.wait_execution(arn)["status"] == "SUCCEEDED"
    log = read(platform, fields["logs_key"]).decode()
    assert "CPU rate limit cgroup" in log or "CPU rate limit no cgroup could be made: pinned to 2 of" in log, log


def test_a_model_file_that_does_not_import_fails_with_error_json(platform, run_worker):
    message, arn, fields = start(platform, model="import no_such_module_here\n")
    assert run_worker(message) == 0
    described = platform.wait_execution(arn)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"])["path"] == "caught"
    report = json.loads(read(platform, fields["error_key"]))
    assert report["error_type"] == "TrialError" and report["kind"] == "stress_test"
    assert "ModelError" in report["message"] and "no_such_module_here" in report["message"]
    assert not platform.object_exists(fields["results_prefix"] + "test_cases.json")
    assert "no_such_module_here" in read(platform, fields["logs_key"]).decode()


def test_a_config_the_engine_refuses_fails_naming_the_key(platform, run_worker):
    message, arn, fields = start(platform, model=None)  # no model and no pred_col: the engine says which key
    message["trial"]["config"]["data_info"]["label_col"] = "missing_column"
    assert run_worker(message) == 0
    report = json.loads(read(platform, fields["error_key"]))
    assert "missing_column" in report["message"]
