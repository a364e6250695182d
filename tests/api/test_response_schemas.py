"""Real answers of the main flows fit the OpenAPI document (issue 9): create a user, a dataset,
a model, a train job with trials, an app, predict in every style, and read them all back; each
answer's status must be one its operation lists and its body must fit that status's schema
(openapi_validation.check). A field a service adds, renames or retypes without the document
(chalicelib/schemas_responses*.py) fails here, before the schemathesis pass would see it."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import boto3
import numpy as np
import pytest

from chalicelib.entities import Trial, TrialStatus
from chalicelib.ports import EndpointTimeout
from kilele.model import serialize_params

from api_support import MODEL_SOURCE, PASSWORD, SUPERADMIN, TABULAR_CSV, Api, b64
from fake_endpoints import FakeEndpoints
from openapi_validation import Mismatch, check, check_response


class Endpoints(FakeEndpoints):
    """The fake endpoints, taking whatever deploy options the runner port grows (this test is
    about answers' shapes, not deployment)."""

    def deploy(self, name: str, bundle_key: str, **options: Any) -> None:
        super().deploy(name, bundle_key)


@pytest.fixture
def endpoints() -> FakeEndpoints:
    return Endpoints()


@pytest.fixture
def client(install_services, endpoints, settings):
    """The app with fake endpoints, and a train-worker state machine in moto (a Pass state:
    no worker runs here; the trials are stored below as a worker would record them)."""
    from chalice.test import Client

    from app import app

    machine = boto3.client("stepfunctions", region_name=settings.region).create_state_machine(
        name="schemas-train-worker", roleArn="arn:aws:iam::123456789012:role/schemas",
        definition=json.dumps({"StartAt": "Pass", "States": {"Pass": {"Type": "Pass", "End": True}}}))
    services = install_services({"train_worker_state_machine_arn": machine["stateMachineArn"]}, endpoints=endpoints)
    services.users.ensure_superadmin(*SUPERADMIN)
    with Client(app) as chalice_client:
        yield Api(chalice_client)


class Checked:
    """An API client whose every answer is checked against the document."""

    def __init__(self, api: Any):
        self.api = api
        self.checked: list[tuple[str, str, int]] = []

    def __call__(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = self.api.call(method, path, body)
        assert response.status_code == expect, (method, path, response.status_code, response.data)
        check_response(method, path, response)
        self.checked.append((method, path, response.status_code))
        return response.data


def completed_trials(job_id: str, model_id: str, scores: tuple[float, ...]) -> list[str]:
    """COMPLETED trials of a train job, stored as a worker would record them (no worker runs
    under moto), with parameters in the bucket."""
    from chalicelib import wiring

    train_jobs = wiring.services().train_jobs
    now = datetime.now(timezone.utc)
    ids = []
    for number, score in enumerate(scores, start=1):
        trial = Trial(id=f"{job_id}-t{number}", train_job_id=job_id, model_id=model_id, model_name="tree",
                      worker_key=f"{model_id}-0", number=number, knobs={"depth": number, "criterion": "gini"},
                      fingerprint=str(number), created_at=now, started_at=now,
                      params_key=f"trials/{job_id}-t{number}/params.npz", model_seconds=0.5, worker_seconds=0.7)
        train_jobs._trials.add(trial)
        train_jobs._trials.finish(trial.id, TrialStatus.COMPLETED, now, score=score)
        train_jobs._blobs.put_bytes(trial.params_key, serialize_params({"w": np.arange(3.0)}))
        ids.append(trial.id)
    return ids


def test_the_main_flows_answer_what_the_document_says(superadmin, endpoints):
    admin = Checked(superadmin)
    assert admin("GET", "/")["status"] == "ok"
    admin("GET", "/openapi.json")
    admin("GET", "/users/me")
    user = admin("POST", "/users", {"email": "schemas@example.com", "password": PASSWORD,
                                    "user_type": "MODEL_DEVELOPER"}, expect=201)
    assert user["banned_date"] is None
    admin("GET", "/users")
    dev = Checked(superadmin.login("schemas@example.com", PASSWORD))
    key = dev("POST", "/api-keys", {"name": "ci"}, expect=201)
    dev("GET", "/api-keys")
    dev("DELETE", f"/api-keys/{key['id']}")
    admin("GET", "/audit-events")

    # datasets: direct and presigned uploads
    dataset = dev("POST", "/datasets", {"name": "iris", "task": "TABULAR_CLASSIFICATION",
                                        "content_base64": b64(TABULAR_CSV), "target_column": "target"}, expect=201)
    dev("GET", f"/datasets/{dataset['id']}")
    dev("GET", "/datasets?task=TABULAR_CLASSIFICATION")
    upload = dev("POST", "/datasets/uploads", {"name": "big", "task": "TABULAR_REGRESSION", "size_bytes": 1000},
                 expect=201)
    assert upload["dataset"]["status"] == "UPLOADING" and upload["upload"]["url"]

    # a model, its file, a train job
    model = dev("POST", "/models", {"name": "tree", "task": "TABULAR_CLASSIFICATION", "model_class": "MyModel",
                                    "model_file_base64": b64(MODEL_SOURCE)},
                expect=201)
    dev("GET", f"/models/{model['id']}")
    dev("GET", "/models")
    source = dev.api.call("GET", f"/models/{model['id']}/file")
    check_response("GET", f"/models/{model['id']}/file", source)
    created = dev("POST", "/train-jobs", {"app": "iris", "task": "TABULAR_CLASSIFICATION",
                                          "train_dataset_id": dataset["id"], "val_dataset_id": dataset["id"],
                                          "budget": {"MODEL_TRIAL_COUNT": 2}, "models": [model["id"]]}, expect=201)
    trial_ids = completed_trials(created["id"], model["id"], (0.9, 0.8))
    dev("GET", "/train-jobs")
    dev("GET", "/train-jobs/iris")
    dev("GET", "/train-jobs/iris/-1")
    stopped = dev("POST", "/train-jobs/iris/1/stop")
    assert stopped["status"] == "STOPPED" and stopped["workers"] is not None
    dev("GET", "/train-jobs/iris/1/trials")
    best = dev("GET", "/train-jobs/iris/1/best-trials?max_count=1")
    assert best[0]["score"] == 0.9 and best[0]["fully_trained"] is True
    dev("GET", f"/trials/{trial_ids[0]}")
    dev("GET", f"/trials/{trial_ids[0]}/logs")
    dev("GET", f"/trials/{trial_ids[0]}/parameters")
    dev("POST", "/bundles", {"app": "iris", "trial_id": trial_ids[0]}, expect=201)
    dev("POST", "/bundles", {"app": "iris", "app_version": 1}, expect=201)

    # serving: an inference job, an app, predict in every style, metrics, the queue API
    job = dev("POST", "/inference-jobs", {"app": "iris", "app_version": 1}, expect=201)
    assert job["predictor_host"] == job["query_host"]
    for path in ("/inference-jobs", "/inference-jobs/iris", "/inference-jobs/iris/1", "/inference-jobs/iris/-1/latest"):
        dev("GET", path)
    dev("POST", "/apps", {"name": "iris", "input_type": "floats", "default_output": {"0": 1.0},
                          "slo_micros": 2_000_000, "top_n": 1}, expect=201)
    dev("GET", "/apps")
    dev("GET", "/apps/iris")
    dev("PATCH", "/apps/iris", {"slo_micros": 3_000_000})
    dev("POST", "/apps/iris/version", {"version": 1})
    for body in ({"query": [1.0, 2.0]}, {"queries": [[1.0, 2.0], [3.0, 4.0]]}, {"input": [1.0, 2.0]},
                 {"input_batch": [[1.0, 2.0]]}, {"instances": [[1.0, 2.0]]}):
        dev("POST", "/apps/iris/predict", body)
    endpoints.failure = EndpointTimeout("too slow")  # past the SLO: the app's default output, marked
    defaulted = dev("POST", "/apps/iris/predict", {"query": [1.0, 2.0]})
    assert defaulted["default"] is True and defaulted["default_explanation"]
    dev("POST", "/apps/iris/predict", {"input": [1.0, 2.0]})
    endpoints.failure = None
    metrics = dev("GET", "/apps/iris/metrics?minutes=5")
    assert {m["name"] for m in metrics} >= {"kilele.requests", "kilele.batch_size", "kilele.latency_ms"}
    dev("POST", "/queues/iris/items", {"items": [{"uri": "a", "data": [1.0, 2.0]}]}, expect=202)
    dev("POST", "/queues/iris/dequeue")
    dev("POST", "/apps/iris/rollback")
    dev("POST", "/inference-jobs/iris/1/stop")
    dev("DELETE", "/apps/iris")

    # projects and managed images
    project = dev("POST", "/projects", {"name": "p", "description": "d"}, expect=201)
    dev("GET", f"/projects/{project['project_id']}")
    dev("GET", "/projects")
    dev("POST", "/stress-tests/uploads", {"filename": "ref.csv"}, expect=201)
    dev("GET", "/stress-tests")
    dev("GET", "/managed-images")
    admin("POST", "/jobs/stop-all")

    # errors fit the Error schema too
    missing = dev.api.call("GET", "/datasets/nope")
    check_response("GET", "/datasets/nope", missing)
    assert missing.status_code == 404
    admin("POST", "/users/ban", {"email": "schemas@example.com"})
    refused = dev.api.call("GET", "/users/me")
    check_response("GET", "/users/me", refused)
    assert refused.status_code == 401
    assert len(admin.checked) + len(dev.checked) >= 55


def test_a_field_the_document_does_not_describe_is_a_mismatch():
    """The check can fail: an extra field, a wrong type, a missing field, an undocumented status."""
    user = {"id": "u", "email": "a@b", "user_type": "ADMIN", "datetime_created": "2026-12-01T00:00:00+00:00",
            "banned_date": None, "iam_principals": []}
    check("GET", "/users/me", 200, user)
    for bad in ({**user, "password_hash": "x"}, {**user, "user_type": "ROOT"}, {k: v for k, v in user.items() if k != "id"},
                {**user, "datetime_created": "yesterday"}):
        with pytest.raises(Mismatch):
            check("GET", "/users/me", 200, bad)
    with pytest.raises(Mismatch, match="not documented"):
        check("GET", "/users/me", 418, user)
    with pytest.raises(Mismatch):
        check("GET", "/users/me", 404, {"detail": "not found"})
