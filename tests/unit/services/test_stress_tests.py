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
    job = h.services.stress_tests.start_stress_test(dev, config(h, dev), ram_request_megabytes=1000)
    [(name, state)] = h.fakes.stress_workflows.starts
    message = state["message"]
    assert name == job["job_id"] and job["status"] == "PENDING"
    assert message["memory_limit_mb"] == 2000 and message["heartbeat_seconds"] == h.settings.trial_heartbeat_seconds
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
    s.record_failure({**state, "failure": {"Error": "States.Timeout", "Cause": None}})
    assert "no heartbeat" in s.get_stress_test(dev, job["job_id"])["error"]


def test_admins_see_others_jobs_and_others_do_not(h):
    dev, other, admin = h.user(), h.user(UserType.APP_DEVELOPER), h.user(UserType.ADMIN)
    job = h.services.stress_tests.start_stress_test(dev, config(h, dev))
    assert h.services.stress_tests.get_stress_test(admin, job["job_id"])["job_id"] == job["job_id"]
    with pytest.raises(NotFound):
        h.services.stress_tests.get_stress_test(other, job["job_id"])
    with pytest.raises(NotFound):
        h.services.stress_tests.get_logs(other, job["job_id"])
