"""A continuous-test job through the stress-test state machine, executed by moto with the real
handlers (the Lambda shim): the worker's part is the real engine in this process
(``kilele_worker.child.stress_test`` on the message's files, as the model process runs it),
answering like the worker (its files under ``results_prefix``, then SendTaskSuccess).

From a reference: the instance is activated, the bins before the drift pass, the bins after
breach the drift monitor (recorded with the report's link); then an incremental job re-tests
one bin with the union of its rows and tests a new one."""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time

import ct_data
from kilele_worker import child
from kilele_worker.aws import run_keys
from kilele_worker.message import StressTestSpec


def run_worker(platform, message: dict, token: str) -> None:
    """The worker's part of one stress-test job, in process (no sandbox: the model is ours),
    with heartbeats as the worker sends them (the tests' heartbeat timeout is 3 s)."""
    sfn = platform.services.aws.client("stepfunctions")
    done = threading.Event()

    def beat() -> None:
        while not done.wait(0.5):
            try:
                sfn.send_task_heartbeat(taskToken=token)
            except Exception:  # noqa: BLE001 - the task ended meanwhile (its success raced this beat)
                return

    threading.Thread(target=beat, daemon=True).start()
    try:
        output = _run(platform, message)
    finally:
        done.set()
    sfn.send_task_success(taskToken=token, output=json.dumps(output))


def _run(platform, message: dict) -> dict:
    s3 = platform.services.aws.client("s3")
    spec = StressTestSpec.from_dict(message)  # the worker's own parsing of the platform's message
    reads, _, prefixes = run_keys(spec)
    assert prefixes == [spec.results_prefix]
    with tempfile.TemporaryDirectory() as work:
        paths = {}
        names = {"ref": spec.config["data_info"]["ref_path"], "eval": spec.config["data_info"]["eval_path"],
                 "model": spec.config["model_info"]["path"], "history": "ct_history.parquet"}  # the message's names
        wanted = {"ref": spec.ref_key, "eval": spec.eval_key, "model": spec.model_key,
                  "history": spec.continuous.get("history_key")}
        for what, key in wanted.items():
            if key:
                assert key in reads  # the run's credentials allow reading it
                paths[what] = os.path.join(work, names[what])
                s3.download_file(spec.bucket, key, paths[what])
        config = json.loads(json.dumps(spec.config))
        config["data_info"].update(ref_path=paths["ref"], eval_path=paths["eval"])
        config["model_info"] = {"path": paths["model"]}
        out = os.path.join(work, "output")
        os.mkdir(out)
        result = child.stress_test({"mode": "stress_test", "config": config, "output_dir": out,
                                    "test_run_id": spec.test_run_id, "project_id": spec.project_id,
                                    "continuous": spec.continuous, "history_path": paths.get("history")})
        names = list(child.STRESS_TABLES) + [child.REPORT_FILE] + [n for n in result["extra_files"]
                                                                    if n in child.CT_FILES]
        for name in names:
            s3.upload_file(os.path.join(out, name), spec.bucket, spec.results_prefix + name)
    return {"job_id": spec.id, **{k: v for k, v in result.items() if k != "status"}}


def upload(platform, dev, name: str, data: bytes) -> str:
    s = platform.services
    uri = s.stress_tests.start_upload(dev, name)["uri"]
    s.aws.client("s3").put_object(Bucket=s.settings.data_bucket, Key=uri.split("/", 3)[3], Body=data)
    return uri


def a_user(platform):
    from chalicelib.entities import UserType

    s = platform.services
    admin = s.users.ensure_superadmin("root@wf", "secret1")
    email = f"ct{time.monotonic_ns()}@wf"
    s.users.create_user(admin, email, "Tr4in-the-Model!", UserType.MODEL_DEVELOPER)
    return s.auth._users.get(email)


def wait(platform, dev, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = platform.services.stress_tests.get_stress_test(dev, job_id)
        if job["status"] in ("SUCCEEDED", "FAILING"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"the continuous test did not end in {timeout} s: {job}")


def test_a_continuous_test_from_a_reference_then_an_incremental_one(platform):
    platform.runner.stress_worker = lambda message, token: run_worker(platform, message, token)
    s, dev = platform.services, a_user(platform)
    evaluation = ct_data.evaluation(4, drift_from=2)
    config = {"run_name": "loans", "data_info": {"label_col": "y",
                                                 "ref_path": upload(platform, dev, "ref.csv", ct_data.csv(ct_data.reference())),
                                                 "eval_path": upload(platform, dev, "eval.csv", ct_data.csv(evaluation[:450]))},
              "model_info": {"path": upload(platform, dev, "model.py", ct_data.MODEL)},
              "continuous_info": {"timestamp_col": "timestamp", "bin_size": "day"}}
    job = s.continuous_tests.start_continuous_test_from_reference(dev, config)
    done = wait(platform, dev, job["job_id"])
    assert done["status"] == "SUCCEEDED", done
    instance = s.continuous_tests.get_active_ct_instance(dev, job["project_id"])
    assert instance["ct_instance_id"] == job["ct_instance_id"] and instance["running_job_id"] is None
    cases = s.stress_tests.get_test_cases(dev, job["job_id"])
    assert {"time_bin_start", "time_bin_end"} <= set(cases["columns"])
    assert len({r["time_bin_start"] for r in cases["records"]}) == 3  # 450 rows: bins 0, 1 and 2
    breaches = s.continuous_tests.list_breaches(dev, instance["ct_instance_id"])
    assert {b["time_bin_start"][:10] for b in breaches if b["monitor_id"] == "drift"} == {"2024-04-03"}
    assert all(b["report"] == f"/stress-tests/{job['job_id']}/report" for b in breaches)
    assert s.stress_tests.get_report(dev, job["job_id"])["url"]
    # The instance's run: the stress test of the reference, the timestamp column no feature of it.
    ot = json.loads(s.aws.client("s3").get_object(Bucket=s.settings.data_bucket,
                                                   Key=f"stress/{job['job_id']}/reference_test_cases.json")["Body"].read())
    assert ot["records"] and not any("timestamp" in r["features"] for r in ot["records"])
    assert {"time_bin_start"} & set(ot["columns"]) == set()

    # Bin 2's other rows arrive (with 20 of its rows again) and all of bin 3.
    more = upload(platform, dev, "more.csv", ct_data.csv(evaluation[430:]))
    second = s.continuous_tests.start_incremental_continuous_test(
        dev, instance["ct_instance_id"], {"eval_path": more, "timestamp_col": "timestamp"})
    assert wait(platform, dev, second["job_id"])["status"] == "SUCCEEDED"
    [message] = [m for m in platform.runner.seen if m["id"] == second["job_id"]]
    assert message["continuous"]["history_key"] == f"stress/{job['job_id']}/history.parquet"
    bins = s.continuous_tests.list_bins(dev, instance["ct_instance_id"])
    assert [(b["time_bin_start"][:10], b["metrics"]["num_inputs"], b["job_id"] == second["job_id"]) for b in bins] == [
        ("2024-04-01", 150, False), ("2024-04-02", 150, False), ("2024-04-03", 150, True), ("2024-04-04", 150, True)]
    drift = {b["time_bin_start"][:10] for b in s.continuous_tests.list_breaches(dev, instance["ct_instance_id"])
             if b["monitor_id"] == "drift"}
    assert drift == {"2024-04-03", "2024-04-04"}
