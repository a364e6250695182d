"""The stress-test state machine, executed by moto with the real handlers (the Lambda shim) and
a scripted worker: success, a failing worker with its error.json, a silent worker."""
from __future__ import annotations

import time

CSV = b"x,y\n1,0\n2,1\n3,0\n"


def start(platform) -> tuple:
    from chalicelib.entities import UserType

    s = platform.services
    admin = s.users.ensure_superadmin("root@wf", "secret1")
    email = f"tester{time.monotonic_ns()}@wf"
    s.users.create_user(admin, email, "Tr4in-the-Model!", UserType.APP_DEVELOPER)
    dev = s.auth._users.get(email)
    uris = {}
    for name, data in (("ref.csv", CSV), ("eval.csv", CSV), ("model.py", b"def predict_df(df): ...\n")):
        uri = s.stress_tests.start_upload(dev, name)["uri"]
        platform.services.aws.client("s3").put_object(Bucket=s.settings.data_bucket, Key=uri.split("/", 3)[3], Body=data)
        uris[name] = uri
    config = {"run_name": "wf", "data_info": {"label_col": "y", "ref_path": uris["ref.csv"], "eval_path": uris["eval.csv"]},
              "model_info": {"path": uris["model.py"]}}
    return dev, s.stress_tests.start_stress_test(dev, config)


def wait(platform, dev, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = platform.services.stress_tests.get_stress_test(dev, job_id)
        if job["status"] in ("SUCCEEDED", "FAILING"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"the stress test did not end in {timeout} s: {job}")


def execution_status(platform, job_id: str) -> str:
    sfn = platform.services.aws.client("stepfunctions")
    arn = platform.services.settings.stress_test_state_machine_arn
    deadline = time.monotonic() + 10
    while True:
        [execution] = [e for e in sfn.list_executions(stateMachineArn=arn)["executions"] if e["name"] == job_id]
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            return execution["status"]
        time.sleep(0.1)


def test_a_stress_test_succeeds_with_its_results(platform):
    dev, job = start(platform)
    assert job["status"] in ("PENDING", "RUNNING")  # the workflow may have marked it RUNNING already
    done = wait(platform, dev, job["job_id"])
    assert done["status"] == "SUCCEEDED" and done["error"] is None and done["running_time_secs"] >= 0
    cases = platform.services.stress_tests.get_test_cases(dev, job["job_id"])
    assert cases["test_run_id"] == job["test_run_id"] and len(cases["records"]) == 3
    assert platform.services.stress_tests.get_logs(dev, job["job_id"])["logs"] == "engine log\n"
    [message] = [m for m in platform.runner.seen if m["kind"] == "stress_test" and m["id"] == job["job_id"]]
    assert message["config"]["data_info"]["ref_path"] == "ref.csv"
    assert execution_status(platform, job["job_id"]) == "SUCCEEDED"


def test_a_failing_worker_makes_the_job_failing_with_its_reason(platform):
    platform.runner.stress_outcome = lambda message: ("fail", "ModelError: model.py: No module named 'xgboost'")
    dev, job = start(platform)
    done = wait(platform, dev, job["job_id"])
    assert done["status"] == "FAILING"
    assert done["error"] == "ModelError: model.py: No module named 'xgboost'"
    assert execution_status(platform, job["job_id"]) == "FAILED"


def test_a_silent_worker_is_caught_by_the_heartbeat_timeout(platform):
    platform.runner.stress_outcome = lambda message: ("hang", None)
    dev, job = start(platform)
    time.sleep(0.5)
    assert platform.services.stress_tests.get_stress_test(dev, job["job_id"])["status"] == "RUNNING"
    done = wait(platform, dev, job["job_id"], timeout=30)
    assert done["status"] == "FAILING" and "no heartbeat" in done["error"]
