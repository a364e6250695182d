"""Inference jobs, applications, predict and metrics through the API, with an in-memory
endpoint runner standing in for the model servers (the real server is covered by
tests/unit/inference and tests/e2e)."""
from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime, timezone

import boto3
import numpy as np
import pytest

from chalicelib.ports import (
    EndpointModelError,
    EndpointRejected,
    EndpointState,
    EndpointTimeout,
    EndpointUnavailable,
)
from chalicelib.entities import Task, TrainJob, TrainJobStatus, Trial, TrialStatus
from kilele.model import serialize_params

from api_support import b64
from fake_endpoints import FakeEndpoints

MODEL_SOURCE = b"from kilele.model import BaseModel\n\nclass M(BaseModel):\n    pass\n"


@pytest.fixture
def endpoints() -> FakeEndpoints:
    return FakeEndpoints()


@pytest.fixture
def service_overrides(endpoints) -> dict:
    """The app under test serves through the fake endpoints."""
    return {"endpoints": endpoints}


@pytest.fixture
def dev(endpoints, make_user):
    return make_user("APP_DEVELOPER")


def stopped_train_job(dev_api, app: str = "iris", version: int = 1, scores=(0.9, 0.8)) -> TrainJob:
    """A STOPPED train job with one COMPLETED trial per score, stored directly."""
    from chalicelib import wiring

    services = wiring.services()
    user = services.auth._users.get(dev_api.email)
    model = dev_api.call("POST", "/models", {"name": f"m-{app}-{version}", "task": "TABULAR_CLASSIFICATION",
                                             "model_class": "M", "model_file_base64": b64(MODEL_SOURCE)})
    assert model.status_code in (201, 403), model.data
    if model.status_code == 403:  # app developers cannot upload models: the superadmin's public one
        raise AssertionError("use a model developer")
    now = datetime.now(timezone.utc)
    job = TrainJob(id=f"job-{app}-{version}", user_id=user.id, app=app, app_version=version,
                   task=Task.TABULAR_CLASSIFICATION, train_dataset_id="d", val_dataset_id="d", budget={},
                   model_ids=[model.data["id"]], created_at=now, status=TrainJobStatus.STOPPED)
    services.train_jobs._jobs.add(job)
    for index, score in enumerate(scores):
        trial = Trial(id=f"{job.id}-t{index}", train_job_id=job.id, model_id=model.data["id"], model_name="m",
                      worker_key="w", number=index + 1, knobs={"k": index}, fingerprint=str(index), created_at=now,
                      params_key=f"trials/{job.id}-t{index}/params.npz",
                      onnx_key=f"trials/{job.id}-t{index}/model.onnx")
        services.train_jobs._trials.add(trial)
        services.train_jobs._trials.finish(trial.id, TrialStatus.COMPLETED, now, score=score)
        services.train_jobs._blobs.put_bytes(trial.params_key, serialize_params({"w": np.arange(3.0)}))
    return job


@pytest.fixture
def model_dev(endpoints, make_user):
    return make_user("MODEL_DEVELOPER")


def deploy(api, app="iris", version=1, scores=(0.9, 0.8)):
    stopped_train_job(api, app, version, scores)
    response = api.call("POST", "/inference-jobs", {"app": app, "app_version": version})
    assert response.status_code == 201, response.data
    return response.data


def test_predictor_host_and_query_host_are_where_predict_answers(model_dev, endpoints):
    created = deploy(model_dev)
    # seed 001: POST http://{predictor_host}/predict; seed 000 calls it query_host
    assert created["predictor_host"] == created["query_host"] == "127.0.0.1:8000/apps/iris"
    assert created["predictor_url"] == f"http://{created['predictor_host']}/predict"
    path = created["predictor_host"].split("/", 1)[1]  # what the test client routes: the path
    response = model_dev.call("POST", f"/{path}/predict", {"query": [1, 2]})
    assert response.status_code == 200 and response.data == {"prediction": {"0": 0.25, "1": 0.75},
                                                             "query_id": response.data["query_id"]}
    job = model_dev.call("GET", "/inference-jobs/iris/-1").data
    assert job["predictor_host"] == job["query_host"] == created["predictor_host"]
    (worker,) = job["workers"]  # seed 000's worker fields
    assert {"service_id", "status", "replicas", "trial", "datetime_started", "datetime_stopped"} <= set(worker)
    assert worker["status"] == "RUNNING" and worker["replicas"] == 1 and worker["service_id"]
    assert worker["trial"]["score"] == 0.9 and worker["trial"]["model_name"] == "m"


def test_get_inference_job_is_the_newest_whatever_its_status(model_dev, endpoints):
    deploy(model_dev, version=1)
    model_dev.call("POST", "/inference-jobs/iris/1/stop")
    latest = model_dev.call("GET", "/inference-jobs/iris/-1/latest")
    assert latest.status_code == 200 and latest.data["status"] == "STOPPED" and latest.data["app_version"] == 1
    assert latest.data["workers"][0]["status"] == "STOPPED"
    assert model_dev.call("GET", "/inference-jobs/iris/-1").status_code == 404  # none running
    assert model_dev.call("GET", "/inference-jobs/iris/2/latest").status_code == 404


def test_a_model_error_is_a_502_and_the_default_is_marked_by_a_header(model_dev, endpoints):
    deploy(model_dev)
    endpoints.failure = EndpointModelError("query 0: m (M, trial t) failed on it: ValueError: boom")
    failed = model_dev.call("POST", "/apps/iris/predict", {"query": [1, 2]})
    assert failed.status_code == 502 and failed.data["error"]["code"] == "model_error"
    assert "ValueError: boom" in failed.data["error"]["message"]
    model_dev.call("POST", "/apps", {"name": "iris", "input_type": "floats", "default_output": "none",
                                     "slo_micros": 50000})
    endpoints.failure = EndpointTimeout("the endpoint did not answer within 0.05 s")
    answered = model_dev.call("POST", "/apps/iris/predict", {"instances": [[1.0]]})
    assert answered.status_code == 200 and answered.headers["X-Kilele-Default"] == "true"
    assert answered.data["predictions"] == ["none"] and answered.data["default"] is True
    endpoints.failure = None
    assert model_dev.call("POST", "/apps/iris/predict", {"query": [1.0]}).headers["X-Kilele-Default"] == "false"


def test_nan_in_a_predict_body_is_a_400(model_dev, endpoints):
    deploy(model_dev)
    response = model_dev.call("POST", "/apps/iris/predict", raw=b'{"query": [NaN, 1]}')
    assert response.status_code == 400 and "not valid JSON" in response.data["error"]["message"]
    assert endpoints.invocations == []


def test_metrics_of_an_unknown_app_are_a_404(model_dev, endpoints):
    response = model_dev.call("GET", "/apps/nope/metrics")
    assert response.status_code == 404 and "there is no app 'nope'" in response.data["error"]["message"]


def test_inference_job_serves_the_best_trial_of_each_model(model_dev, endpoints, bucket):
    created = deploy(model_dev)
    assert created["status"] == "RUNNING" and created["predictor_url"].endswith("/apps/iris/predict")
    running = model_dev.call("GET", "/inference-jobs/iris/-1").data
    assert [w["trial"]["score"] for w in running["workers"]] == [0.9]  # one model: its best trial
    bundle_key = next(iter(endpoints.deployed.values()))
    with tarfile.open(fileobj=io.BytesIO(bucket.read(bundle_key)), mode="r:gz") as archive:
        manifest = json.load(archive.extractfile("kilele-bundle.json"))
        assert manifest["members"][0]["trial_id"].endswith("-t0") and manifest["members"][0]["onnx"] is None
        assert "members/job-iris-1-t0/params.npz" in archive.getnames()
    again = model_dev.call("POST", "/inference-jobs", {"app": "iris", "app_version": 1})
    assert again.status_code == 409 and "already running" in again.data["error"]["message"]


def test_three_payload_styles(model_dev, endpoints):
    deploy(model_dev)
    # Every answer carries its queries' ids beside the seed's fields (labels are sent by them later).
    rafiki = model_dev.call("POST", "/apps/iris/predict", {"query": [1, 2, 3, 4]}).data
    assert rafiki == {"prediction": {"0": 0.25, "1": 0.75}, "query_id": rafiki["query_id"]}
    assert isinstance(rafiki["query_id"], int) and 0 <= rafiki["query_id"] < 2 ** 52
    rafiki_batch = model_dev.call("POST", "/apps/iris/predict", {"queries": [[1], [2]]}).data
    assert rafiki_batch == {"predictions": [{"0": 0.25, "1": 0.75}] * 2, "query_ids": rafiki_batch["query_ids"]}
    assert len(set(rafiki_batch["query_ids"])) == 2
    clipper = model_dev.call("POST", "/apps/iris/predict", {"input": [1.0, 2.0]}).data
    assert clipper["output"] == {"0": 0.25, "1": 0.75} and clipper["default"] is False and "query_id" in clipper
    batch = model_dev.call("POST", "/apps/iris/predict", {"input_batch": [[1.0], [2.0]]}).data["batch_predictions"]
    assert len(batch) == 2 and all(not b["default"] for b in batch)
    serving = model_dev.call("POST", "/apps/iris/predict", {"instances": [{"t": [1, 2]}, [3, 4]]}).data
    assert serving == {"predictions": [{"0": 0.25, "1": 0.75}] * 2, "query_ids": serving["query_ids"]}
    assert len(serving["query_ids"]) == 2
    assert endpoints.invocations[-1][1] == [[1, 2], [3, 4]]  # one-key instances are unwrapped


@pytest.mark.parametrize("body, status, phrase", [
    ({}, 400, "exactly one"),
    ({"query": [1], "input": [1]}, 400, "exactly one"),
    ({"queries": []}, 400, "empty"),
    ({"queries": "x"}, 400, "must be a list"),
    ({"nope": 1}, 400, "nope"),
])
def test_bad_predict_payloads(model_dev, endpoints, body, status, phrase):
    deploy(model_dev)
    response = model_dev.call("POST", "/apps/iris/predict", body)
    assert response.status_code == status and phrase in response.data["error"]["message"], response.data


def test_unknown_app_and_too_many_queries(model_dev, endpoints):
    response = model_dev.call("POST", "/apps/nope/predict", {"query": [1]})
    assert response.status_code == 404 and "there is no app 'nope'" in response.data["error"]["message"]
    deploy(model_dev)
    response = model_dev.call("POST", "/apps/iris/predict", {"queries": [[1]] * 1001})
    assert response.status_code == 413


def test_model_rejection_is_a_400(model_dev, endpoints):
    deploy(model_dev)
    endpoints.failure = EndpointRejected(400, "query 0 has 2 features, the model expects 4")
    response = model_dev.call("POST", "/apps/iris/predict", {"query": [1, 2]})
    assert response.status_code == 400 and "expects 4" in response.data["error"]["message"]


def test_slo_default_output_and_errors_without_an_app(model_dev, endpoints):
    deploy(model_dev)
    endpoints.failure = EndpointTimeout("the endpoint did not answer within 0.05 s")
    response = model_dev.call("POST", "/apps/iris/predict", {"input": [1.0]})
    assert response.status_code == 504  # no application registered: no default output
    registered = model_dev.call("POST", "/apps", {"name": "iris", "input_type": "floats",
                                                 "default_output": "unknown", "slo_micros": 50000})
    assert registered.status_code == 201, registered.data
    answer = model_dev.call("POST", "/apps/iris/predict", {"input": [1.0]}).data
    assert answer["output"] == "unknown" and answer["default"] is True and "0.05" in answer["default_explanation"]
    endpoints.failure = EndpointUnavailable("the inference server exited with code -9")
    endpoints.state_override = EndpointState("Failed", "the inference server exited with code -9")
    answer = model_dev.call("POST", "/apps/iris/predict", {"input_batch": [[1.0], [2.0]]}).data
    assert all(b["default"] for b in answer["batch_predictions"])
    job = model_dev.call("GET", "/inference-jobs/iris").data[0]
    assert job["status"] == "ERRORED" and "code -9" in job["error"]  # the job shows the failure


def test_input_type_and_top_n(model_dev, endpoints):
    deploy(model_dev)
    model_dev.call("POST", "/apps", {"name": "iris", "input_type": "ints", "default_output": None,
                                     "slo_micros": 1000000, "top_n": 1})
    bad = model_dev.call("POST", "/apps/iris/predict", {"input": [1.5, 2]})
    assert bad.status_code == 400 and "only integers" in bad.data["error"]["message"]
    assert model_dev.call("POST", "/apps/iris/predict", {"input": [1, 2]}).data["output"] == {"1": 0.75}
    assert model_dev.call("POST", "/apps", {"name": "iris", "input_type": "ints", "default_output": 0,
                                            "slo_micros": 1000}).status_code == 409


def test_version_switch_and_rollback(model_dev, endpoints):
    deploy(model_dev, version=1)
    deploy(model_dev, version=2)
    model_dev.call("POST", "/apps", {"name": "iris", "input_type": "floats", "default_output": -1,
                                     "slo_micros": 1000000})
    names = {v: n for n, v in ((n, k) for n, k in zip(endpoints.deployed, (1, 2)))}
    model_dev.call("POST", "/apps/iris/predict", {"input": [1.0]})
    assert endpoints.invocations[-1][0] == names[2]  # latest version by default
    switched = model_dev.call("POST", "/apps/iris/version", {"version": 1}).data
    assert switched["version"] == 1
    model_dev.call("POST", "/apps/iris/predict", {"input": [1.0]})
    assert endpoints.invocations[-1][0] == names[1]
    rolled = model_dev.call("POST", "/apps/iris/rollback").data
    assert rolled["version"] is None and rolled["previous_version"] == 1  # back to following the latest
    model_dev.call("POST", "/apps/iris/predict", {"input": [1.0]})
    assert endpoints.invocations[-1][0] == names[2]
    assert model_dev.call("POST", "/apps/iris/rollback").data["version"] == 1  # and forth
    missing = model_dev.call("POST", "/apps/iris/version", {"version": 7})
    assert missing.status_code == 404


def test_metrics_count_requests_errors_and_defaults(model_dev, endpoints):
    deploy(model_dev)
    for _ in range(3):
        model_dev.call("POST", "/apps/iris/predict", {"queries": [[1], [2]]})
    model_dev.call("POST", "/apps", {"name": "iris", "input_type": "floats", "default_output": 0, "slo_micros": 1000})
    endpoints.failure = EndpointTimeout("slow")
    model_dev.call("POST", "/apps/iris/predict", {"input": [1.0]})
    metrics = {m["name"]: m for m in model_dev.call("GET", "/apps/iris/metrics?minutes=5").data}
    assert metrics["kilele.requests"]["count"] == 4 and metrics["kilele.queries"]["count"] == 7
    assert metrics["kilele.defaults"]["count"] == 1 and metrics["kilele.errors"]["count"] == 0
    assert metrics["kilele.batch_size"]["mean"] == 2.0
    latency = metrics["kilele.latency_ms"]
    assert latency["count"] == 4 and latency["median"] <= latency["_99thPercentile"] <= latency["max"]


def test_stop_inference_job_and_stop_all(model_dev, endpoints, superadmin):
    deploy(model_dev)
    stopped = model_dev.call("POST", "/inference-jobs/iris/-1/stop").data
    assert stopped["status"] == "STOPPED" and not endpoints.deployed
    assert model_dev.call("POST", "/apps/iris/predict", {"query": [1]}).status_code == 404
    deploy(model_dev, version=2)
    assert model_dev.call("POST", "/jobs/stop-all").status_code == 403
    assert superadmin.call("POST", "/jobs/stop-all").data["inference_jobs_stopped"] == 1


def test_inference_job_needs_a_stopped_train_job(model_dev, endpoints):
    from chalicelib import wiring

    job = stopped_train_job(model_dev)
    wiring.services().train_jobs._jobs.set_status(job.id, TrainJobStatus.RUNNING, only_from=(TrainJobStatus.STOPPED,))
    response = model_dev.call("POST", "/inference-jobs", {"app": "iris"})
    assert response.status_code == 409 and "STOPPED" in response.data["error"]["message"]
    bad = model_dev.call("POST", "/inference-jobs", {"app": "iris", "budget": {"TIME_HOURS": 1}})
    assert bad.status_code == 400 and "GPU_COUNT" in bad.data["error"]["message"]


def test_export_bundle_of_a_trial(model_dev, endpoints):
    stopped_train_job(model_dev)
    response = model_dev.call("POST", "/bundles", {"app": "iris", "trial_id": "job-iris-1-t1"})
    assert response.status_code == 201, response.data
    assert [m["trial_id"] for m in response.data["manifest"]["members"]] == ["job-iris-1-t1"]
    assert response.data["url"].startswith("http")
    other = model_dev.call("POST", "/bundles", {"app": "iris", "trial_id": "nope"})
    assert other.status_code == 404



def test_an_inference_job_asking_for_gpus_where_endpoints_get_none_is_a_422(model_dev, endpoints, override_settings):
    override_settings(gpus_available=False)
    stopped_train_job(model_dev)
    response = model_dev.call("POST", "/inference-jobs", {"app": "iris", "budget": {"GPU_COUNT": 1}})
    assert response.status_code == 422, response.data
    assert "no GPU for endpoints" in response.data["error"]["message"] and not endpoints.deployed
    assert model_dev.call("GET", "/inference-jobs/iris").data == []


def test_an_iam_signed_export_names_its_direct_key(model_dev, endpoints, superadmin):
    from api.test_direct_uploads import signed

    user_arn = "arn:aws:iam::123456789012:user/bob"
    email = model_dev.call("GET", "/users/me").data["email"]
    linked = superadmin.call("POST", "/users/iam-principals", {"email": email, "principal_arn": user_arn})
    assert linked.status_code == 200, linked.data
    stopped_train_job(model_dev)
    status, answer = signed("POST", "/bundles", user_arn, {"app": "iris", "trial_id": "job-iris-1-t1"})
    assert status == 201, answer
    direct = answer["direct"]
    assert direct["key"].startswith("direct/bob/exports/") and direct["endpoint_url"] is None  # S3 itself (moto)
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=direct["bucket"], Key=direct["key"])["Body"]
    assert body.read(2) == b"\x1f\x8b"  # the gzipped bundle is there
    assert model_dev.call("POST", "/bundles", {"app": "iris", "trial_id": "job-iris-1-t1"}).data["direct"] is None
