"""Stress-test jobs through the API (docs/stress-tests-api.md): validation, inputs, listing,
results. The workflow is a fake here (tests/workflows/test_stress_test.py runs the real one)."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from api_support import PASSWORD, SUPERADMIN, TABULAR_CSV, assert_error, b64

from unit.services.fakes import FakeClock, FakeWorkflowRunner

CSV = b"x1,x2,y\n1,2,0\n3,4,1\n5,6,0\n"
MODEL = b"import numpy as np\n\ndef predict_df(df):\n    return np.full(len(df), 0.5)\n"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stress_workflows() -> FakeWorkflowRunner:
    return FakeWorkflowRunner()


@pytest.fixture
def service_overrides(clock, stress_workflows) -> dict[str, Any]:
    return {"clock": clock, "stress_workflows": stress_workflows}


def upload(api, settings, name: str, data: bytes) -> str:
    answer = api.call("POST", "/stress-tests/uploads", {"filename": name})
    assert answer.status_code == 201, answer.data
    uri = answer.data["uri"]
    assert uri.startswith(f"s3://{settings.data_bucket}/stress-inputs/") and uri.endswith("/" + name)
    assert {"url", "fields"} <= set(answer.data["upload"])
    boto3.client("s3", region_name=settings.region).put_object(
        Bucket=settings.data_bucket, Key=uri.split("/", 3)[3], Body=data)
    return uri


def a_config(api, settings, **changes: Any) -> dict[str, Any]:
    config = {
        "run_name": "run 1",
        "data_info": {"label_col": "y", "ref_path": upload(api, settings, "ref.csv", CSV),
                      "eval_path": upload(api, settings, "eval.csv", CSV)},
        "model_info": {"path": upload(api, settings, "model.py", MODEL)},
    }
    config.update(changes)
    return config


def start(api, config: dict, **body: Any):
    return api.call("POST", "/stress-tests", {"test_run_config": config, **body})


def finish(settings, job_id: str, records: list[dict]) -> None:
    """Mark a job SUCCEEDED with results, as the workflow's record step does after the worker."""
    from chalicelib.wiring import services

    s3 = boto3.client("s3", region_name=settings.region)
    for name, table in (("test_cases.json", {"columns": ["test_run_id", "status"], "records": records}),
                        ("test_run.json", {"columns": ["test_run_id"], "records": records[:1]}),
                        ("report.html", None)):
        body = b"<html>report</html>" if table is None else json.dumps(table).encode()
        s3.put_object(Bucket=settings.data_bucket, Key=f"stress/{job_id}/{name}", Body=body)
    steps = services().stress_tests
    steps.start({"job_id": job_id})
    steps.record({"job_id": job_id, "result": {"test_run_id": "x", "num_test_cases": len(records)}})


def test_start_a_stress_test_and_read_it(make_user, settings, stress_workflows):
    dev = make_user("APP_DEVELOPER")
    started = start(dev, a_config(dev, settings), ram_request_megabytes=2000)
    assert started.status_code == 201, started.data
    job = started.data
    assert {"job_id", "name", "type", "status", "project_id", "test_run_id", "start_time_secs",
            "running_time_secs", "created_at", "error", "progress", "ram_request_megabytes",
            "cpu_request_millicores", "rime_managed_image", "custom_image"} == set(job)
    assert (job["name"], job["type"], job["status"]) == ("run 1", "MODEL_STRESS_TEST", "PENDING")
    assert (job["ram_request_megabytes"], job["cpu_request_millicores"]) == (2000, 1500)
    assert isinstance(job["start_time_secs"], int) and job["running_time_secs"] == 0.0
    # The default project was made for the caller.
    projects = dev.call("GET", "/projects").data
    assert [p["name"] for p in projects] == ["default"] and projects[0]["project_id"] == job["project_id"]
    # One execution, whose message names the inputs by their keys, and the limit twice the request.
    [(name, state)] = stress_workflows.starts
    message = state["message"]
    assert name == job["job_id"] and state["job_id"] == job["job_id"] and message["kind"] == "stress_test"
    assert message["memory_limit_mb"] == 4000 and message["results_prefix"] == f"stress/{job['job_id']}/"
    assert message["ref_key"].startswith("stress-inputs/") and message["config"]["data_info"]["ref_path"] == "ref.csv"
    assert message["config"]["model_info"] == {"path": "model.py"}
    assert dev.call("GET", f"/stress-tests/{job['job_id']}").data["status"] == "PENDING"
    assert dev.call("GET", f"/stress-tests/{job['job_id']}/logs").data == {"job_id": job["job_id"], "logs": ""}


@pytest.mark.parametrize("change, key", [
    ({"data_info": {"ref_path": "s3://x/y", "eval_path": "s3://x/y"}}, "data_info.label_col"),
    ({"model_task": "Ranking"}, "model_task"),
    ({"colour": "red"}, "colour"),
    ({"model_info": {"path": "model.py", "trial_id": "t"}}, "model_info"),
    ({"tests_config": []}, "tests_config"),
])
def test_a_bad_config_is_400_naming_the_key(make_user, settings, stress_workflows, change, key):
    dev = make_user("MODEL_DEVELOPER")
    assert_error(start(dev, a_config(dev, settings, **change)), 400, "invalid_input", key)
    assert stress_workflows.starts == [] and dev.call("GET", "/stress-tests").data == []


def test_paths_must_be_own_uploads_or_visible_datasets(make_user, settings):
    alice, bob = make_user("MODEL_DEVELOPER"), make_user("MODEL_DEVELOPER")
    config = a_config(alice, settings)
    # A local path (not of the document's forms): 400 naming the key. Someone else's upload,
    # another bucket, nothing uploaded yet: 404 naming the key, as for any resource.
    local = {**config, "data_info": {**config["data_info"], "eval_path": "/home/me/eval.csv"}}
    assert_error(start(alice, local), 400, "invalid_input", "data_info.eval_path")
    assert_error(start(bob, config), 404, "not_found", "data_info.ref_path", "not one of your uploads")
    elsewhere = {**config, "data_info": {**config["data_info"], "ref_path": "s3://another-bucket/x.csv"}}
    assert_error(start(alice, elsewhere), 404, "not_found", "data_info.ref_path", "not one of your uploads")
    missing = alice.call("POST", "/stress-tests/uploads", {"filename": "m.py"}).data["uri"]
    assert_error(start(alice, {**config, "model_info": {"path": missing}}), 404, "not_found",
                 "model_info.path", "nothing was uploaded")
    # A READY dataset of the caller is fine; someone else's is 404.
    dataset = alice.call("POST", "/datasets", {"name": "d", "task": "TABULAR_CLASSIFICATION",
                                               "content_base64": b64(TABULAR_CSV)}).data
    with_dataset = {**config, "data_info": {**config["data_info"], "eval_path": f"kilele://datasets/{dataset['id']}"}}
    assert start(alice, with_dataset).status_code == 201
    bobs = a_config(bob, settings)
    bobs["data_info"]["eval_path"] = with_dataset["data_info"]["eval_path"]
    assert_error(start(bob, bobs), 404, "not_found", "data_info.eval_path")


def test_images_projects_and_unsupported_models(make_user, settings):
    dev, other = make_user("MODEL_DEVELOPER"), make_user("MODEL_DEVELOPER")
    config = a_config(dev, settings)
    assert_error(start(dev, config, rime_managed_image="tf-2.4"), 404, "not_found", "tf-2.4")
    # A custom image runs as given only where the stack may pull it (none configured here).
    assert_error(start(dev, config, custom_image={"name": "me/img:1"}), 422, "unprocessable", "custom_image.name",
                 "docker.io")
    foreign = other.call("POST", "/projects", {"name": "theirs"}).data["project_id"]
    assert_error(start(dev, config, project_id=foreign), 404, "not_found", foreign)
    mine = dev.call("POST", "/projects", {"name": "mine"}).data["project_id"]
    assert start(dev, config, project_id=mine).data["project_id"] == mine
    assert_error(start(dev, {**config, "model_info": {"trial_id": "t1"}}), 404, "not_found", "model_info.trial_id")
    assert_error(start(dev, config, ram_request_megabytes=1), 400, "invalid_input", "ram_request_megabytes")


def test_results_exist_once_succeeded(make_user, settings):
    dev = make_user("MODEL_DEVELOPER")
    job = start(dev, a_config(dev, settings)).data
    path = f"/stress-tests/{job['job_id']}"
    for what in ("test-cases", "test-run", "report"):
        assert_error(dev.call("GET", f"{path}/{what}"), 409, "conflict", "PENDING")
    records = [{"test_run_id": job["test_run_id"], "status": "PASS"}, {"test_run_id": job["test_run_id"], "status": "FAIL"}]
    finish(settings, job["job_id"], records)
    assert dev.call("GET", path).data["status"] == "SUCCEEDED"
    cases = dev.call("GET", f"{path}/test-cases").data
    assert cases == {"test_run_id": job["test_run_id"], "version": "1.0", "columns": ["test_run_id", "status"],
                     "records": records}
    assert dev.call("GET", f"{path}/test-run?version=1.0").data["records"] == records[:1]
    assert_error(dev.call("GET", f"{path}/test-cases?version=0.9"), 400, "invalid_input", "version")
    assert "report.html" in dev.call("GET", f"{path}/report").data["url"]


def test_listing_filters_and_the_two_day_window(make_user, settings, clock, client):
    dev, other = make_user("MODEL_DEVELOPER"), make_user("APP_DEVELOPER")
    config = a_config(dev, settings)
    old = start(dev, config).data
    clock.advance(minutes=5)
    project = dev.call("POST", "/projects", {"name": "p"}).data["project_id"]
    new = start(dev, config, project_id=project).data
    finish(settings, new["job_id"], [{"test_run_id": "x", "status": "PASS"}])
    start(other, a_config(other, settings))
    ids = lambda r: [j["job_id"] for j in r.data]  # noqa: E731
    assert ids(dev.call("GET", "/stress-tests")) == [new["job_id"], old["job_id"]]
    assert ids(dev.call("GET", "/stress-tests?status=SUCCEEDED")) == [new["job_id"]]
    assert ids(dev.call("GET", "/stress-tests?status=PENDING&status=SUCCEEDED")) == [new["job_id"], old["job_id"]]
    assert ids(dev.call("GET", f"/stress-tests?project_id={project}")) == [new["job_id"]]
    assert_error(dev.call("GET", "/stress-tests?status=DONE"), 400, "invalid_input", "status")
    assert_error(other.call("GET", f"/stress-tests/{old['job_id']}"), 404, "not_found")
    # Two days later the first job is gone from the listing and from GET (moto never expires it).
    clock.advance(days=2, minutes=-2)
    dev = client.login(dev.email, PASSWORD)
    assert ids(dev.call("GET", "/stress-tests")) == [new["job_id"]]
    assert_error(dev.call("GET", f"/stress-tests/{old['job_id']}"), 404, "not_found")


def test_every_role_may_run_stress_tests_and_anonymous_callers_may_not(client, make_user, settings):
    for role in ("ADMIN", "MODEL_DEVELOPER", "APP_DEVELOPER"):
        user = make_user(role)
        assert start(user, a_config(user, settings)).status_code == 201, role
    assert_error(client.anonymous().call("GET", "/stress-tests"), 401, "unauthenticated")
    assert_error(client.anonymous().call("POST", "/stress-tests/uploads", {"filename": "a.csv"}), 401,
                 "unauthenticated")


def test_bad_upload_names_are_400(make_user):
    dev = make_user("MODEL_DEVELOPER")
    assert_error(dev.call("POST", "/stress-tests/uploads", {"filename": "a b.csv"}), 400, "invalid_input", "filename")


# -- a Kilele trial as the model under test (issue 8 item 2(b)) ---------------------------------


def seeded_train_job(dev_api, app: str, version: int = 1, task: str = "TABULAR_CLASSIFICATION",
                     trials: tuple = ((0.9, "COMPLETED"),)) -> list[str]:
    """A train job of ``app`` v``version`` with trials of those (score, status), stored directly;
    returns the trial ids."""
    from datetime import datetime, timezone

    from chalicelib import wiring
    from chalicelib.entities import Task, TrainJob, TrainJobStatus, Trial, TrialStatus

    services = wiring.services()
    user = services.auth._users.get(dev_api.email)
    model = dev_api.call("POST", "/models", {"name": f"m-{app}-{version}", "task": task, "model_class": "M",
                                             "model_file_base64": b64(MODEL_SOURCE)})
    assert model.status_code == 201, model.data
    now = datetime.now(timezone.utc)
    job = TrainJob(id=f"job-{app}-{version}", user_id=user.id, app=app, app_version=version, task=Task(task),
                   train_dataset_id="d", val_dataset_id="d", budget={}, model_ids=[model.data["id"]],
                   created_at=now, status=TrainJobStatus.STOPPED)
    services.train_jobs._jobs.add(job)
    ids = []
    for index, (score, status) in enumerate(trials):
        trial = Trial(id=f"{job.id}-t{index}", train_job_id=job.id, model_id=model.data["id"], model_name="m",
                      worker_key="w", number=index + 1, knobs={"k": index}, fingerprint=str(index), created_at=now,
                      params_key=f"trials/{job.id}-t{index}/params.npz")
        services.train_jobs._trials.add(trial)
        if status == "COMPLETED":
            services.train_jobs._trials.finish(trial.id, TrialStatus.COMPLETED, now, score=score)
        ids.append(trial.id)
    return ids


MODEL_SOURCE = b"from kilele.model import BaseModel\n\nclass M(BaseModel):\n    pass\n"


def trial_config(api, settings, model_info: dict, **changes: Any) -> dict[str, Any]:
    config = a_config(api, settings, **changes)
    config["model_info"] = model_info
    return config


def test_a_completed_trial_is_stress_tested(make_user, settings, stress_workflows, superadmin):
    dev, other = make_user("MODEL_DEVELOPER"), make_user("MODEL_DEVELOPER")
    [done, pending] = seeded_train_job(dev, "loans", trials=((0.8, "COMPLETED"), (None, "PENDING")))
    started = start(dev, trial_config(dev, settings, {"trial_id": done}))
    assert started.status_code == 201, started.data
    message = stress_workflows.starts[-1][1]["message"]
    assert (message["trial_id"], message["model_class"], message["params_key"]) == (
        done, "M", f"trials/{done}/params.npz")
    assert message["model_key"].endswith(".py") and message["knobs"] == {"k": 0}
    assert message["task"] == "TABULAR_CLASSIFICATION" and message["config"]["model_info"] == {"trial_id": done}
    # Someone else's trial is unknown; an admin may test anyone's.
    assert_error(start(other, trial_config(other, settings, {"trial_id": done})), 404, "not_found",
                 "model_info.trial_id", done)
    assert start(superadmin, trial_config(superadmin, settings, {"trial_id": done})).status_code == 201
    # Not COMPLETED: 409.
    assert_error(start(dev, trial_config(dev, settings, {"trial_id": pending})), 409, "conflict",
                 "model_info.trial_id", "PENDING")
    # A model task that does not suit the trial's: 422.
    assert_error(start(dev, trial_config(dev, settings, {"trial_id": done}, model_task="Regression")), 422,
                 "unprocessable", "model_task", "TABULAR_CLASSIFICATION")


def test_an_image_trial_is_422(make_user, settings):
    dev = make_user("MODEL_DEVELOPER")
    [done] = seeded_train_job(dev, "digits", task="IMAGE_CLASSIFICATION")
    assert_error(start(dev, trial_config(dev, settings, {"trial_id": done})), 422, "unprocessable",
                 "model_info.trial_id", "IMAGE_CLASSIFICATION", "tabular")


def test_an_apps_serving_version_is_stress_tested(make_user, settings, stress_workflows):
    dev = make_user("MODEL_DEVELOPER")
    seeded_train_job(dev, "iris", 1, trials=((0.7, "COMPLETED"), (0.9, "COMPLETED")))
    [v2] = seeded_train_job(dev, "iris", 2, task="TABULAR_REGRESSION", trials=((0.5, "COMPLETED"),))
    seeded_train_job(dev, "empty", 1, trials=((None, "PENDING"),))
    # -1: the newest version (no registered app, no live inference job); the task becomes Regression.
    assert start(dev, trial_config(dev, settings, {"app": "iris", "app_version": -1})).status_code == 201
    message = stress_workflows.starts[-1][1]["message"]
    assert message["trial_id"] == v2 and message["config"]["model_task"] == "Regression"
    # A given version: its best COMPLETED trial.
    assert start(dev, trial_config(dev, settings, {"app": "iris", "app_version": 1})).status_code == 201
    assert stress_workflows.starts[-1][1]["message"]["trial_id"] == "job-iris-1-t1"
    assert_error(start(dev, trial_config(dev, settings, {"app": "iris", "app_version": 5})), 404, "not_found",
                 "model_info.app_version")
    assert_error(start(dev, trial_config(dev, settings, {"app": "nope"})), 404, "not_found", "model_info.app")
    assert_error(start(dev, trial_config(dev, settings, {"app": "empty"})), 409, "conflict", "no COMPLETED trial")
    assert_error(start(dev, trial_config(dev, settings, {"app": "iris", "app_version": 0})), 400, "invalid_input",
                 "app_version")


def test_an_iam_signed_report_request_gets_its_own_copy_to_read_from_s3(make_user, settings, superadmin):
    from api.test_direct_uploads import signed

    dev = make_user("MODEL_DEVELOPER")
    user_arn = "arn:aws:iam::123456789012:user/carol"
    email = dev.call("GET", "/users/me").data["email"]
    assert superadmin.call("POST", "/users/iam-principals", {"email": email, "principal_arn": user_arn}).status_code == 200
    job = start(dev, a_config(dev, settings)).data
    finish(settings, job["job_id"], [{"test_run_id": job["test_run_id"], "status": "PASS"}])
    status, answer = signed("GET", f"/stress-tests/{job['job_id']}/report", user_arn,
                            resource="/stress-tests/{job_id}/report", params={"job_id": job["job_id"]})
    assert status == 200, answer
    direct = answer["direct"]
    assert direct["key"] == f"direct/carol/stress-tests/{job['job_id']}/report.html"
    body = boto3.client("s3", region_name=settings.region).get_object(Bucket=direct["bucket"], Key=direct["key"])["Body"]
    assert body.read() == b"<html>report</html>"
    assert dev.call("GET", f"/stress-tests/{job['job_id']}/report").data["direct"] is None
