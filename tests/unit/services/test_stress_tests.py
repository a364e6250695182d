"""Projects and stress-test jobs on the fakes: the default project, inputs, the workflow steps."""
from __future__ import annotations

import json

import pytest

from chalicelib.entities import StressTestStatus, UserType
from chalicelib.errors import Conflict, InvalidInput, NotFound

CSV = b"x,y\n1,0\n2,1\n"


def upload(h, user, name: str, data: bytes = CSV) -> str:
    uri = h.services.stress_tests.start_upload(user, name)["uri"]
    h.fakes.blobs.objects[uri.split("/", 3)[3]] = data
    return uri


def config(h, user, **changes):
    value = {"data_info": {"label_col": "y", "ref_path": upload(h, user, "ref.csv"),
                           "eval_path": upload(h, user, "eval.parquet")},
             "model_info": {"path": upload(h, user, "model.py", b"def predict_df(df): ...")}}
    value.update(changes)
    return value


def test_the_default_project_is_made_once(h):
    dev = h.user(UserType.APP_DEVELOPER)
    first = h.services.projects.default_project(dev)
    assert h.services.projects.default_project(dev) == first
    assert [p["name"] for p in h.services.projects.list_projects(dev)] == ["default"]
    with pytest.raises(Conflict):
        h.services.projects.create_project(dev, "default")


def test_a_default_project_made_meanwhile_is_used(h):
    dev = h.user()
    real_get_by_name = h.fakes.projects.get_by_name
    calls = []

    def racing(owner_id, name):
        calls.append(name)
        if len(calls) == 1:  # someone else creates it between our read and our write
            h.services.projects.create_project(dev, "default")
            return None
        return real_get_by_name(owner_id, name)

    h.fakes.projects.get_by_name = racing
    assert h.services.projects.default_project(dev).name == "default"
    assert len(h.fakes.projects.items) == 1


def test_start_builds_the_message_and_starts_one_execution(h):
    dev = h.user()
    job = h.services.stress_tests.start_stress_test(dev, config(h, dev), ram_request_megabytes=1000,
                                                    cpu_request_millicores=700)
    [(name, state)] = h.fakes.stress_workflows.starts
    message = state["message"]
    assert name == job["job_id"] and job["status"] == "PENDING"
    assert message["memory_limit_mb"] == 2000 and message["heartbeat_seconds"] == h.settings.trial_heartbeat_seconds
    assert message["cpu_limit_millicores"] == 1400  # the limit: twice the request, as on AWS
    assert message["config"]["data_info"]["eval_path"] == "eval.parquet" and message["model_key"].endswith("/model.py")
    assert message["test_run_id"] == job["test_run_id"] and message["project_id"] == job["project_id"]
    assert state["heartbeat_timeout_seconds"] == h.settings.trial_heartbeat_timeout_seconds
    stored = h.fakes.stress_test_jobs.items[job["job_id"]]
    assert stored.config["data_info"]["ref_path"].startswith(f"stress-inputs/{dev.id}/")


def test_a_workflow_that_does_not_start_leaves_a_failing_job(h):
    dev = h.user()
    h.fakes.stress_workflows.failures["start"] = RuntimeError("sfn down")
    with pytest.raises(RuntimeError):
        h.services.stress_tests.start_stress_test(dev, config(h, dev))
    [job] = h.fakes.stress_test_jobs.items.values()
    assert job.status is StressTestStatus.FAILING and "sfn down" in job.error


def test_a_predictions_only_run_needs_a_pred_col(h):
    dev = h.user()
    no_model = config(h, dev, model_info={})
    with pytest.raises(InvalidInput, match="pred_col"):
        h.services.stress_tests.start_stress_test(dev, no_model)
    no_model["data_info"]["pred_col"] = "p"
    job = h.services.stress_tests.start_stress_test(dev, no_model)
    assert h.fakes.stress_workflows.started[job["job_id"]]["message"]["model_key"] is None


def test_steps_running_succeeded_and_failing(h):
    dev = h.user()
    s = h.services.stress_tests
    ok = s.start_stress_test(dev, config(h, dev))
    state = h.fakes.stress_workflows.started[ok["job_id"]]
    s.start(state)
    assert s.get_stress_test(dev, ok["job_id"])["status"] == "RUNNING"
    h.fakes.clock.advance(seconds=30)
    s.record({**state, "result": {"test_run_id": ok["test_run_id"], "num_test_cases": 4, "junk": "x" * 10}})
    done = s.get_stress_test(dev, ok["job_id"])
    assert (done["status"], done["running_time_secs"]) == ("SUCCEEDED", 30.0)
    assert h.fakes.stress_test_jobs.items[ok["job_id"]].summary == {"test_run_id": ok["test_run_id"], "num_test_cases": 4}

    bad = s.start_stress_test(dev, config(h, dev))
    state = h.fakes.stress_workflows.started[bad["job_id"]]
    s.start(state)
    h.fakes.blobs.objects[state["message"]["error_key"]] = json.dumps(
        {"error_type": "TrialError", "message": "ModelError: model.py does not import"}).encode()
    s.record_failure({**state, "failure": {"Error": "TrialError", "Cause": None}})
    failed = s.get_stress_test(dev, bad["job_id"])
    assert (failed["status"], failed["error"]) == ("FAILING", "ModelError: model.py does not import")
    # A recorded job does not change again (a late duplicate answer).
    s.record({**state, "result": {}})
    assert s.get_stress_test(dev, bad["job_id"])["status"] == "FAILING"


def test_a_silent_worker_is_failing_with_a_reason(h):
    dev = h.user()
    s = h.services.stress_tests
    job = s.start_stress_test(dev, config(h, dev))
    state = h.fakes.stress_workflows.started[job["job_id"]]
    # The job had started (the queue task's answer is ``started``): the run task timed out.
    s.record_failure({**state, "started": {"started_at": "2026-12-01T00:00:00Z"},
                      "failure": {"Error": "States.Timeout", "Cause": None}})
    assert "no heartbeat" in s.get_stress_test(dev, job["job_id"])["error"]


def test_a_job_that_never_started_is_failing_at_its_queue_timeout_saying_so(h):
    dev = h.user()
    s = h.services.stress_tests
    job = s.start_stress_test(dev, config(h, dev))
    state = h.fakes.stress_workflows.started[job["job_id"]]
    assert state["queue_timeout_seconds"] == 3600  # the queue wait's own bound (Settings' default)
    s.record_failure({**state, "failure": {"Error": "States.Timeout", "Cause": None}})
    assert "did not start within 3600 s of being queued" in s.get_stress_test(dev, job["job_id"])["error"]


def test_admins_see_others_jobs_and_others_do_not(h):
    dev, other, admin = h.user(), h.user(UserType.APP_DEVELOPER), h.user(UserType.ADMIN)
    job = h.services.stress_tests.start_stress_test(dev, config(h, dev))
    assert h.services.stress_tests.get_stress_test(admin, job["job_id"])["job_id"] == job["job_id"]
    with pytest.raises(NotFound):
        h.services.stress_tests.get_stress_test(other, job["job_id"])
    with pytest.raises(NotFound):
        h.services.stress_tests.get_logs(other, job["job_id"])


# -- a Kilele trial as the model under test (issue 8 item 2(b)) ---------------------------------


def train_job(h, owner, app="app", version=None, task=None, trials=((0.5, False, "COMPLETED"),)):
    """A train job of ``app`` (its next version) with trials of (score, screening, status); returns
    (job, model, trials)."""
    from datetime import timedelta

    from chalicelib.entities import Task, Trial, TrialStatus

    task = task or Task.TABULAR_CLASSIFICATION
    data = h.dataset(owner, task=task)
    model = h.model(owner, task=task)
    job = h.services.train_jobs.create_train_job(owner, app, task, data.id, data.id, {}, [model.id])
    made = []
    for number, (score, screening, status) in enumerate(trials, start=1):
        trial = Trial(id=f"{job['id'][:6]}-t{number}", train_job_id=job["id"], model_id=model.id,
                      model_name=model.name, worker_key=f"{model.id}-0", number=number, knobs={"n": number},
                      fingerprint=str(number), created_at=h.fakes.clock.now + timedelta(seconds=number),
                      status=TrialStatus(status), screening=screening, score=score,
                      params_key=f"trials/{job['id']}/{number}/params.npz")
        h.fakes.trials.add(trial)
        made.append(trial)
    return h.fakes.train_jobs.get(job["id"]), model, made


def trial_started(h, user, model_info, **changes):
    h.services.stress_tests.start_stress_test(user, config(h, user, model_info=model_info, **changes))
    return h.fakes.stress_workflows.starts[-1][1]["message"]


def test_a_trial_resolves_to_its_model_file_class_knobs_and_parameters(h):
    dev = h.user()
    job, model, [trial] = train_job(h, dev)
    h.fakes.models.items[model.id].dependencies = {"scikit-learn": "1.5.0"}
    message = trial_started(h, dev, {"trial_id": trial.id})
    assert message["model_key"] == model.object_key and message["model_class"] == model.model_class
    assert message["params_key"] == trial.params_key and message["knobs"] == {"n": 1}
    assert message["dependencies"] == {"scikit-learn": "1.5.0"} and message["task"] == "TABULAR_CLASSIFICATION"
    assert message["train_job_id"] == job.id and message["config"]["model_info"] == {"trial_id": trial.id}
    assert "model_task" not in message["config"]  # binary or multi-class: the engine infers it from the label
    [stored] = h.fakes.stress_test_jobs.items.values()
    assert stored.config["model_info"] == {"trial_id": trial.id}


def test_trial_rules_404_409_422(h):
    from chalicelib.entities import Task, UserType
    from chalicelib.errors import Unprocessable

    dev, other, admin = h.user(), h.user(), h.user(UserType.ADMIN)
    _, model, [done, failed] = train_job(h, dev, trials=((0.5, False, "COMPLETED"), (None, False, "ERRORED")))
    with pytest.raises(NotFound, match="model_info.trial_id: no trial 'nope'"):
        trial_started(h, dev, {"trial_id": "nope"})
    with pytest.raises(NotFound, match="model_info.trial_id"):
        trial_started(h, other, {"trial_id": done.id})
    assert trial_started(h, admin, {"trial_id": done.id})["trial_id"] == done.id
    with pytest.raises(Conflict, match="ERRORED"):
        trial_started(h, dev, {"trial_id": failed.id})
    with pytest.raises(Unprocessable, match="model_task: 'Regression'"):
        trial_started(h, dev, {"trial_id": done.id}, model_task="Regression")
    _, _, [image] = train_job(h, dev, app="digits", task=Task.IMAGE_CLASSIFICATION)
    with pytest.raises(Unprocessable, match="IMAGE_CLASSIFICATION model; stress tests cover tabular"):
        trial_started(h, dev, {"trial_id": image.id})
    del h.fakes.models.items[model.id]
    with pytest.raises(NotFound, match="was deleted"):
        trial_started(h, dev, {"trial_id": done.id})


def test_a_regression_trial_runs_as_regression(h):
    from chalicelib.entities import Task

    dev = h.user()
    _, _, [trial] = train_job(h, dev, task=Task.TABULAR_REGRESSION)
    assert trial_started(h, dev, {"trial_id": trial.id})["config"]["model_task"] == "Regression"


def test_an_app_version_gives_its_best_completed_trial(h):
    dev = h.user()
    # Full trials before screening ones, then the score; not COMPLETED never.
    _, _, trials = train_job(h, dev, trials=((0.99, True, "COMPLETED"), (0.7, False, "COMPLETED"),
                                             (0.8, False, "COMPLETED"), (None, False, "RUNNING")))
    message = trial_started(h, dev, {"app": "app", "app_version": 1})
    assert message["trial_id"] == trials[2].id
    [stored] = h.fakes.stress_test_jobs.items.values()
    assert stored.config["model_info"] == {"app": "app", "app_version": 1, "trial_id": trials[2].id}
    assert message["config"]["model_info"] == {"trial_id": trials[2].id}  # the engine's: one source


def test_the_serving_version_rule(h):
    from chalicelib.entities import Application, InferenceJob, Task

    dev = h.user()
    versions = {}
    for _ in range(3):
        job, _, [trial] = train_job(h, dev, app="app")
        versions[job.app_version] = trial.id
    assert sorted(versions) == [1, 2, 3]
    # Nothing serves the app: the newest version.
    assert trial_started(h, dev, {"app": "app"})["trial_id"] == versions[3]
    # A live inference job: the newest live version.
    live = InferenceJob(id="ij-1", user_id=dev.id, app="app", app_version=2, train_job_id="x",
                        task=Task.TABULAR_CLASSIFICATION, endpoint_name="e", bundle_key="b", members=[],
                        created_at=h.fakes.clock.now)
    h.fakes.inference_jobs.add(live)
    assert trial_started(h, dev, {"app": "app", "app_version": -1})["trial_id"] == versions[2]
    # A registered app pinned to a version: that version.
    h.fakes.apps.add(Application(user_id=dev.id, name="app", created_at=h.fakes.clock.now, version=1))
    assert trial_started(h, dev, {"app": "app", "app_version": -1})["trial_id"] == versions[1]
    # Someone else's app of the same name is not the caller's.
    with pytest.raises(NotFound, match="model_info.app: you have no train job for app 'app'"):
        trial_started(h, h.user(), {"app": "app"})
