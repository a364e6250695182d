"""A scheduled continuous test's new data read in the worker (issue 12 item 4 on AWS): the job's
evaluation file is the platform's sources manifest; the worker downloads the captured traffic
(SageMaker Data Capture JSON Lines, written by the platform's own writer) and the labels it names,
keeps the queries of the firing's window, joins the labels in and tests the bins; the session
policy lets the run read the source folders; a manifest naming a file elsewhere, or a file that
is not data, fails the job saying which."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pandas as pd
import pytest
from worker_harness import BUCKET

import ct_data
from chalicelib.capture_format import (CapturedQuery, capture_key, capture_record, ground_truth_key,
                                       ground_truth_record)
from kilele_worker.aws import session_policy
from kilele_worker.message import MessageError, StressTestSpec

APP = "capture/u1/fraud/"
LABELS = "ground-truth/u1/fraud/"
T0 = ct_data.START


def put(platform, key: str, body: bytes) -> str:
    platform.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return key


def captured_hour(platform, rows: pd.DataFrame, hour: pd.Timestamp, labelled: bool = True) -> tuple[str, str]:
    """One capture file of ``rows`` (answered in ``hour``) and one ground-truth file of their labels."""
    lines, labels = [], []
    for i, row in rows.iterrows():
        at = pd.Timestamp(row["timestamp"]).to_pydatetime()
        query = CapturedQuery(f"q{i}", {"x": row["x"], "z": row["z"], "c": row["c"]}, 0.5, at)
        lines.append(capture_record(query))
        labels.append(ground_truth_record(f"q{i}", int(row["y"])))
    unique = uuid.uuid4().hex
    key = put(platform, capture_key("u1", "fraud", "ep", "AllTraffic", hour, hour, unique=unique), b"\n".join(lines))
    label_key = put(platform, ground_truth_key("u1", "fraud", hour + timedelta(hours=1), unique=unique),
                    b"\n".join(labels)) if labelled else None
    return key, label_key


def start(platform, manifest: dict, prefixes: list[str]) -> tuple[dict, str, dict]:
    job_id = "ct-" + uuid.uuid4().hex[:10]
    inputs = f"stress-inputs/u1/{job_id}"
    put(platform, f"{inputs}/ref.csv", ct_data.csv(ct_data.reference(300)))
    put(platform, f"{inputs}/model.py", ct_data.MODEL)
    eval_key = put(platform, f"{inputs}/ct-firing.sources.json", json.dumps(manifest).encode())
    prefix = f"stress/{job_id}/"
    config = {"run_name": "scheduled", "random_seed": 1, "model_info": {"path": "model.py"},
              "data_info": {"label_col": "y", "ref_path": "ref.csv", "eval_path": "eval.json"},
              "continuous_info": {"timestamp_col": "timestamp", "bin_size": "hour"}}
    fields = {
        "kind": "stress_test", "id": job_id, "project_id": "p1", "test_run_id": "run-" + job_id, "bucket": BUCKET,
        "ref_key": f"{inputs}/ref.csv", "eval_key": eval_key, "model_key": f"{inputs}/model.py", "config": config,
        "results_prefix": prefix, "logs_key": prefix + "logs.txt", "error_key": prefix + "error.json",
        "claim_key": prefix + "claim.json", "timeout_seconds": 300, "memory_limit_mb": 8000, "heartbeat_seconds": 10,
        "continuous": {"mode": "incremental", "ct_instance_id": "ct1", "history_key": None,
                       "source_prefixes": prefixes},
    }
    arn = platform.sfn.start_execution(stateMachineArn=platform.state_machine_arn, name=job_id,
                                       input=json.dumps({"trial": fields}))["executionArn"]
    return platform.receive_message(), arn, fields


def manifest(**fields) -> dict:
    return {"kind": "kilele.ct_sources", "version": 1, "source": "traffic", "captures": [], "labels": [], "files": [],
            "since": None, "until": None, "timestamp_col": "timestamp", "label_col": "y", **fields}


def read(platform, key: str) -> bytes:
    return platform.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_captured_traffic_of_the_window_is_tested_with_its_labels(platform, run_worker):
    rows = ct_data.evaluation(3, rows_per_bin=60, bin_seconds=3600)
    hours = [T0 + timedelta(hours=h) for h in range(3)]
    files = [captured_hour(platform, rows.iloc[h * 60:(h + 1) * 60], hours[h]) for h in range(3)]
    # The window starts 30 minutes into hour 0 (its first half was the last firing's) and ends with hour 1.
    since, until = hours[0] + timedelta(minutes=30), hours[2]
    sources = manifest(captures=[f[0] for f in files[:2]], labels=[f[1] for f in files],
                       since=since.isoformat(), until=until.isoformat())
    message, arn, fields = start(platform, sources, [APP, LABELS])
    assert run_worker(message) == 0
    described = platform.wait_execution(arn, timeout=60)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])["result"]
    assert output["gathered"] == {"num_rows": 90, "num_files": 2, "num_label_files": 3}  # 30 + 60 rows
    assert output["num_bins"] == 2 and "history.parquet" in output["extra_files"]
    bins = json.loads(read(platform, fields["results_prefix"] + "ct_bins.json"))
    assert [b["metrics"]["num_inputs"] for b in bins] == [30.0, 60.0]
    assert all("model_performance:accuracy" in b["metrics"] for b in bins)  # the labels were joined in as y
    history = pd.read_parquet(pd.io.common.BytesIO(read(platform, fields["results_prefix"] + "history.parquet")))
    assert sorted(history.columns) == ["c", "timestamp", "x", "y", "z"]  # the capture's own columns left out
    assert "the new data: 90 row(s) from 2 file(s)" in read(platform, fields["logs_key"]).decode()


def test_files_that_hold_no_query_of_the_window_test_no_bin_and_keep_the_history(platform, run_worker):
    rows = ct_data.evaluation(1, rows_per_bin=20, bin_seconds=3600)
    key, _ = captured_hour(platform, rows, T0, labelled=False)
    sources = manifest(captures=[key], since=(T0 + timedelta(hours=1)).isoformat())
    message, arn, fields = start(platform, sources, [APP, LABELS])
    assert run_worker(message) == 0
    described = platform.wait_execution(arn, timeout=60)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])["result"]
    assert output["num_bins"] == 0 and output["gathered"]["num_rows"] == 0
    assert "history.parquet" not in output["extra_files"] and "ct_bins.json" in output["extra_files"]
    assert json.loads(read(platform, fields["results_prefix"] + "ct_bins.json")) == []


@pytest.mark.parametrize("where, body, phrase", [
    ("stress-inputs/u2/other/secret.csv", b"x\n1\n", "is not under the run's source folders"),
    ("stress-inputs/u1/landing/bad.parquet", b"not parquet", "bad.parquet is not a readable CSV or Parquet"),
])
def test_a_file_outside_the_folders_or_not_data_fails_the_job_naming_it(platform, run_worker, where, body, phrase):
    put(platform, where, body)
    message, arn, fields = start(platform, manifest(source="files", files=[where]), ["stress-inputs/u1/landing/"])
    run_worker(message)
    described = platform.wait_execution(arn, timeout=60)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"])["path"] == "caught"
    report = json.loads(read(platform, fields["error_key"]))
    assert phrase in report["message"], report


def test_the_session_policy_reads_the_source_folders_and_the_message_checks_them():
    fields = {"id": "st-1", "bucket": BUCKET, "ref_key": "stress-inputs/u1/a/ref.csv",
              "eval_key": "stress-inputs/u1/b/f.sources.json", "results_prefix": "stress/st-1/",
              "logs_key": "stress/st-1/logs.txt", "error_key": "stress/st-1/error.json",
              "claim_key": "stress/st-1/claim.json",
              "config": {"data_info": {"ref_path": "ref.csv", "eval_path": "eval.json"}, "continuous_info": {}},
              "continuous": {"mode": "incremental", "ct_instance_id": "c", "source_prefixes": [APP, LABELS]}}
    policy = session_policy(StressTestSpec.from_dict(fields))
    [reads] = [s["Resource"] for s in policy["Statement"] if s["Sid"] == "ReadItsInputs"]
    assert f"arn:aws:s3:::{BUCKET}/{APP}*" in reads and f"arn:aws:s3:::{BUCKET}/{LABELS}*" in reads
    for bad in ([], ["capture/"], ["capture/u1/../x/"], "capture/u1/"):
        with pytest.raises(MessageError, match="source_prefixes"):
            StressTestSpec.from_dict({**fields, "continuous": {**fields["continuous"], "source_prefixes": bad}})
