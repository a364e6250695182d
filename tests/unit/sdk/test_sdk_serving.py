"""Inference jobs, applications, predictions, metrics and bundles through the Client: paths,
bodies, query parameters, answers unwrapped per payload style, errors, and the bundle downloaded
from a presigned URL without credentials."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from kilele import Client, InferenceBudgetOption, InputType
from kilele.errors import (
    BadRequestError,
    ConflictError,
    ConnectionFailedError,
    DownloadFailedError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    UnprocessableError,
)

INFERENCE_JOB = {"id": "ij-1", "app": "iris_app", "app_version": 3, "train_job_id": "j-1",
                 "task": "TABULAR_CLASSIFICATION", "status": "RUNNING", "user_id": "u-1", "budget": {},
                 "predictor_url": "http://127.0.0.1:8000/apps/iris_app/predict", "endpoint_name": "kilele-local-ij-1",
                 "workers": [{"trial": {"id": "t-1", "model_name": "logreg", "knobs": {}, "score": 0.9}}],
                 "datetime_started": "2026-11-23T10:00:00+00:00", "datetime_stopped": None, "error": None}
APP = {"name": "iris_app", "input_type": "floats", "default_output": "default_pred", "slo_micros": 100000,
       "top_n": None, "version": None, "previous_version": None, "datetime_created": "2026-11-23T10:00:00+00:00"}


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


@pytest.fixture
def client(server):
    return Client(base_url=server.url, token="tok-1")


# ---------------------------------------------------------------------- inference jobs


def test_create_inference_job_body_with_enum_budget(server, client):
    created = {"id": "ij-1", "app": "iris_app", "app_version": 3, "train_job_id": "j-1",
               "predictor_url": "http://x/apps/iris_app/predict", "status": "RUNNING", "error": None}
    server.route("POST", "/inference-jobs", 201, created)
    assert client.create_inference_job("iris_app", 3, {InferenceBudgetOption.GPU_COUNT: 1}) == created
    request = server.last("POST", "/inference-jobs")
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.json() == {"app": "iris_app", "app_version": 3, "budget": {"GPU_COUNT": 1}}


def test_create_inference_job_defaults(server, client):
    server.route("POST", "/inference-jobs", 201, {"id": "ij-1"})
    client.create_inference_job("iris_app")
    assert server.last().json() == {"app": "iris_app", "app_version": -1, "budget": {}}
    client.create_inference_job("iris_app", budget={"gpu_count": 0})
    assert server.last().json()["budget"] == {"GPU_COUNT": 0}


@pytest.mark.parametrize("status, cls", [(409, ConflictError), (422, UnprocessableError), (404, NotFoundError),
                                         (400, BadRequestError), (403, ForbiddenError)])
def test_create_inference_job_errors_are_typed(server, client, status, cls):
    server.route("POST", "/inference-jobs", status, error("x_code", "train job iris_app v3 is RUNNING"))
    with pytest.raises(cls) as info:
        client.create_inference_job("iris_app", 3)
    assert info.value.status_code == status and info.value.code == "x_code"
    assert "is RUNNING" in str(info.value)


def test_create_inference_job_bad_version_fails_before_any_call(server, client):
    with pytest.raises(ValueError, match="app_version"):
        client.create_inference_job("iris_app", 0)
    with pytest.raises(TypeError, match="budget"):
        client.create_inference_job("iris_app", budget=[("GPU_COUNT", 1)])
    assert server.requests == []


def test_get_inference_jobs_by_user_with_and_without_user_id(server, client):
    server.route("GET", "/inference-jobs", 200, [INFERENCE_JOB])
    assert client.get_inference_jobs_by_user() == [INFERENCE_JOB]
    assert server.last().query == {}
    assert client.get_inference_jobs_by_user("u-2") == [INFERENCE_JOB]
    assert server.last().query == {"user_id": ["u-2"]}


def test_get_inference_jobs_of_app_escapes_the_name(server, client):
    server.route("GET", "/inference-jobs/iris_app", 200, [INFERENCE_JOB])
    assert client.get_inference_jobs_of_app("iris_app") == [INFERENCE_JOB]
    server.route("GET", "/inference-jobs/a%2Fb", 200, [])
    assert client.get_inference_jobs_of_app("a/b") == []
    assert server.last().path == "/inference-jobs/a%2Fb"


def test_get_running_inference_job_latest_and_version(server, client):
    server.route("GET", "/inference-jobs/iris_app/-1", 200, INFERENCE_JOB)
    server.route("GET", "/inference-jobs/iris_app/2", 404, error("not_found", "app 'iris_app' v2 has no running inference job"))
    assert client.get_running_inference_job("iris_app")["workers"][0]["trial"]["id"] == "t-1"
    with pytest.raises(NotFoundError, match="no running inference job"):
        client.get_running_inference_job("iris_app", 2)
    assert server.paths() == [("GET", "/inference-jobs/iris_app/-1"), ("GET", "/inference-jobs/iris_app/2")]


def test_stop_inference_job(server, client):
    server.route("POST", "/inference-jobs/iris_app/3/stop", 200, {**INFERENCE_JOB, "status": "STOPPED"})
    assert client.stop_inference_job("iris_app", 3)["status"] == "STOPPED"
    assert server.last().body == b""
    server.route("POST", "/inference-jobs/iris_app/-1/stop", 404, error("not_found", "no running inference job"))
    with pytest.raises(NotFoundError):
        client.stop_inference_job("iris_app")


def test_stop_all_jobs_returns_the_counts(server, client):
    server.route("POST", "/jobs/stop-all", 200, {"train_jobs_stopped": 2, "inference_jobs_stopped": 1})
    assert client.stop_all_jobs() == {"train_jobs_stopped": 2, "inference_jobs_stopped": 1}
    server.route("POST", "/jobs/stop-all", 403, error("forbidden", "only the superadmin"))
    with pytest.raises(ForbiddenError, match="superadmin"):
        client.stop_all_jobs()


# ---------------------------------------------------------------------- predictions


def test_predict_one_query_rafiki_style(server, client):
    server.route("POST", "/apps/iris_app/predict", 200, {"prediction": {"setosa": 0.9, "virginica": 0.1}})
    assert client.predict("iris_app", query=[5.1, 3.5, 1.4, 0.2]) == {"setosa": 0.9, "virginica": 0.1}
    request = server.last()
    assert request.json() == {"query": [5.1, 3.5, 1.4, 0.2]}
    assert request.headers["authorization"] == "Bearer tok-1"


def test_predict_queries_rafiki_style_with_numpy(server, client):
    server.route("POST", "/apps/iris_app/predict", 200, {"predictions": [0, 1]})
    assert client.predict("iris_app", queries=np.array([[1.0, 2.0], [3.0, 4.0]])) == [0, 1]
    assert server.last().json() == {"queries": [[1.0, 2.0], [3.0, 4.0]]}
    client.predict("iris_app", queries=[np.array([1, 2]), [3, 4]])
    assert server.last().json() == {"queries": [[1, 2], [3, 4]]}


@pytest.mark.parametrize("kwargs", [{}, {"query": [1], "queries": [[1]]}])
def test_predict_needs_exactly_one_payload(server, client, kwargs):
    with pytest.raises(ValueError, match="exactly one"):
        client.predict("iris_app", **kwargs)
    assert server.requests == []


def test_predict_queries_must_be_a_list(server, client):
    with pytest.raises(TypeError, match="queries must be a list"):
        client.predict("iris_app", queries="abc")
    assert server.requests == []


def test_query_clipper_style_single_and_batch(server, client):
    single = {"query_id": 7, "output": 2, "default": False}
    server.route("POST", "/apps/bentoml-test/predict", 200, single)
    assert client.query("bentoml-test", input=[6.5, 3.0, 5.8, 2.2]) == single
    assert server.last().json() == {"input": [6.5, 3.0, 5.8, 2.2]}

    batch = [{"query_id": 8, "output": 2, "default": False},
             {"query_id": 9, "output": "default_pred", "default": True, "default_explanation": "SLO"}]
    server.route("POST", "/apps/bentoml-test/predict", 200, {"batch_predictions": batch})
    assert client.query("bentoml-test", input_batch=[[1.0], [2.0]]) == batch
    assert server.last().json() == {"input_batch": [[1.0], [2.0]]}


def test_query_needs_exactly_one_payload(server, client):
    with pytest.raises(ValueError, match="exactly one of input and input_batch"):
        client.query("a")
    with pytest.raises(ValueError):
        client.query("a", input=[1], input_batch=[[1]])
    assert server.requests == []


def test_predict_instances_cluster_serving_style(server, client):
    server.route("POST", "/apps/iris_app/predict", 200, {"predictions": [{"a": 0.7}, {"b": 0.6}]})
    assert client.predict_instances("iris_app", [{"t": [1.0, 2.0]}, [3.0, 4.0]]) == [{"a": 0.7}, {"b": 0.6}]
    assert server.last().json() == {"instances": [{"t": [1.0, 2.0]}, [3.0, 4.0]]}
    with pytest.raises(TypeError, match="instances must be a list"):
        client.predict_instances("iris_app", {"t": [1.0]})


@pytest.mark.parametrize("status, cls", [(400, BadRequestError), (404, NotFoundError), (413, PayloadTooLargeError),
                                         (503, ServerError), (504, ServerError)])
def test_predict_errors_are_typed(server, client, status, cls):
    server.route("POST", "/apps/iris_app/predict", status, error("x_code", "query 0 has 'a'; input type floats"))
    with pytest.raises(cls) as info:
        client.predict("iris_app", query=["a"])
    assert info.value.status_code == status and "input type floats" in info.value.message


def test_get_app_metrics(server, client):
    metrics = [{"name": "kilele.requests", "count": 3, "meanRate": 0.001}]
    server.route("GET", "/apps/iris_app/metrics", 200, metrics)
    assert client.get_app_metrics("iris_app") == metrics
    assert server.last().query == {"minutes": ["60"]}
    client.get_app_metrics("iris_app", minutes=5)
    assert server.last().query == {"minutes": ["5"]}


# ---------------------------------------------------------------------- applications


def test_register_application_clipper_signature(server, client):
    server.route("POST", "/apps", 201, APP)
    assert client.register_application("iris_app", "floats", "default_pred", 100000) == APP
    assert server.last().json() == {"name": "iris_app", "input_type": "floats", "default_output": "default_pred",
                                    "slo_micros": 100000}
    client.register_application("iris_app", InputType.DOUBLES, {"label": None}, 5000, top_n=3)
    assert server.last().json() == {"name": "iris_app", "input_type": "doubles", "default_output": {"label": None},
                                    "slo_micros": 5000, "top_n": 3}
    client.register_application("iris_app", "Strings", None, 5000)
    body = server.last().json()
    assert body["input_type"] == "strings" and body["default_output"] is None


def test_register_application_conflict_and_bad_input(server, client):
    server.route("POST", "/apps", 409, error("conflict", "application 'iris_app' exists"))
    with pytest.raises(ConflictError, match="exists"):
        client.register_application("iris_app", "floats", 0, 100000)
    server.route("POST", "/apps", 400, error("invalid_input", "slo_micros: must be >= 1000"))
    with pytest.raises(BadRequestError, match="slo_micros"):
        client.register_application("iris_app", "floats", 0, 10)


def test_get_applications_and_application(server, client):
    server.route("GET", "/apps", 200, [APP])
    server.route("GET", "/apps/iris_app", 200, {**APP, "serving_version": 3})
    assert client.get_applications() == [APP]
    assert client.get_application("iris_app")["serving_version"] == 3
    with pytest.raises(NotFoundError):
        client.get_application("other")


def test_update_application_sends_only_given_fields(server, client):
    server.route("PATCH", "/apps/iris_app", 200, {**APP, "slo_micros": 20000})
    assert client.update_application("iris_app", slo_micros=20000)["slo_micros"] == 20000
    request = server.last()
    assert request.method == "PATCH" and request.json() == {"slo_micros": 20000}
    client.update_application("iris_app", input_type=InputType.INTS, default_output=[0], top_n=2)
    assert server.last().json() == {"input_type": "ints", "default_output": [0], "top_n": 2}


def test_update_application_with_nothing_fails_before_any_call(server, client):
    with pytest.raises(ValueError, match="nothing to update"):
        client.update_application("iris_app")
    assert server.requests == []


def test_delete_application(server, client):
    server.route("DELETE", "/apps/iris_app", 200, APP)
    assert client.delete_application("iris_app") == APP
    assert server.last().method == "DELETE"


def test_set_model_version_and_rollback(server, client):
    server.route("POST", "/apps/iris_app/version", 200, {**APP, "version": 2, "previous_version": 3})
    server.route("POST", "/apps/iris_app/rollback", 200, {**APP, "version": 3, "previous_version": 2})
    assert client.set_model_version("iris_app", 2)["version"] == 2
    assert server.last().json() == {"version": 2}
    assert client.rollback_application("iris_app")["version"] == 3
    assert server.last().path == "/apps/iris_app/rollback" and server.last().body == b""


@pytest.mark.parametrize("bad", [0, -1, "two", True])
def test_set_model_version_needs_a_fixed_version(server, client, bad):
    with pytest.raises(ValueError, match="version"):
        client.set_model_version("iris_app", bad)
    assert server.requests == []


def test_set_model_version_without_running_job_and_rollback_without_previous(server, client):
    server.route("POST", "/apps/iris_app/version", 404, error("not_found", "app 'iris_app' v9 has no running inference job"))
    server.route("POST", "/apps/iris_app/rollback", 409, error("conflict", "no previous version to roll back to"))
    with pytest.raises(NotFoundError, match="v9"):
        client.set_model_version("iris_app", 9)
    with pytest.raises(ConflictError, match="previous version"):
        client.rollback_application("iris_app")


def test_link_model_to_app_latest_uses_the_running_job_version(server, client):
    server.route("GET", "/inference-jobs/iris_app/-1", 200, INFERENCE_JOB)
    server.route("POST", "/apps/iris_app/version", 200, {**APP, "version": 3})
    assert client.link_model_to_app("iris_app")["version"] == 3
    assert server.paths() == [("GET", "/inference-jobs/iris_app/-1"), ("POST", "/apps/iris_app/version")]
    assert server.last().json() == {"version": 3}


def test_link_model_to_app_given_version_goes_straight_to_set_version(server, client):
    server.route("POST", "/apps/iris_app/version", 200, {**APP, "version": 2})
    client.link_model_to_app("iris_app", 2)
    assert server.paths() == [("POST", "/apps/iris_app/version")]
    assert server.last().json() == {"version": 2}


def test_link_model_to_app_without_running_job(server, client):
    server.route("GET", "/inference-jobs/iris_app/-1", 404, error("not_found", "no running inference job"))
    with pytest.raises(NotFoundError):
        client.link_model_to_app("iris_app")
    assert server.paths() == [("GET", "/inference-jobs/iris_app/-1")]


def test_get_query_addr_is_the_api_root(server):
    assert Client(base_url=server.url + "/api/").get_query_addr() == server.url + "/api"
    assert Client("10.0.0.1", 9000).get_query_addr() == "http://10.0.0.1:9000"


# ---------------------------------------------------------------------- bundles


MANIFEST = {"format": 1, "app": "iris_app", "app_version": 3, "task": "TABULAR_CLASSIFICATION",
            "created_at": "2026-11-23T10:00:00+00:00", "members": [], "requirements": ["scikit-learn==1.5.2"]}


def bundle_bytes(manifest: dict = MANIFEST, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        files = {"kilele-bundle.json": json.dumps(manifest).encode(), "requirements.txt": b"scikit-learn==1.5.2\n",
                 "README.md": b"# Kilele bundle\n", **(extra or {})}
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def serve_bundle(server, data: bytes, status: int = 200) -> None:
    server.route("POST", "/bundles", 201, {"url": f"{server.url}/storage/exports/x/bundle.tar.gz?X-Amz-Signature=abc",
                                           "manifest": MANIFEST})
    server.route("GET", "/storage/exports/x/bundle.tar.gz", status, data,
                 headers={"Content-Type": "application/gzip"} if status == 200 else {})


def test_export_bundle_downloads_without_auth_to_default_path(server, client, tmp_path, monkeypatch):
    data = bundle_bytes()
    serve_bundle(server, data)
    monkeypatch.chdir(tmp_path)
    result = client.export_bundle("iris_app")
    assert result == {"path": "iris_app-v3.tar.gz", "manifest": MANIFEST}
    assert (tmp_path / "iris_app-v3.tar.gz").read_bytes() == data
    request = server.last("POST", "/bundles")
    assert request.json() == {"app": "iris_app", "app_version": -1}
    assert request.headers["authorization"] == "Bearer tok-1"
    download = server.last("GET", "/storage/exports/x/bundle.tar.gz")
    assert download.query == {"X-Amz-Signature": ["abc"]}
    assert "authorization" not in download.headers and "x-api-key" not in download.headers
    assert [p.name for p in tmp_path.iterdir()] == ["iris_app-v3.tar.gz"]  # no leftover temp file


def test_export_bundle_of_a_trial_to_a_given_path_with_api_key(server, tmp_path):
    client = Client(base_url=server.url, api_key="kk_a.b")
    serve_bundle(server, bundle_bytes())
    out = tmp_path / "one.tar.gz"
    result = client.export_bundle("iris_app", 2, trial_id="t-7", out_path=str(out))
    assert result["path"] == str(out) and out.is_file()
    assert server.last("POST", "/bundles").json() == {"app": "iris_app", "app_version": 2, "trial_id": "t-7"}
    assert server.last("POST", "/bundles").headers["x-api-key"] == "kk_a.b"
    assert "x-api-key" not in server.last("GET", "/storage/exports/x/bundle.tar.gz").headers


def test_export_bundle_refused_download_raises_and_leaves_nothing(server, client, tmp_path):
    s3_error = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    serve_bundle(server, s3_error.encode(), status=403)
    out = tmp_path / "b.tar.gz"
    with pytest.raises(DownloadFailedError) as info:
        client.export_bundle("iris_app", out_path=str(out))
    assert info.value.status_code == 403 and info.value.code == "AccessDenied"
    assert "Request has expired" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_export_bundle_keeps_an_existing_file_when_the_download_fails(server, client, tmp_path, closed_port):
    server.route("POST", "/bundles", 201, {"url": f"http://127.0.0.1:{closed_port}/b.tar.gz", "manifest": MANIFEST})
    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"old")
    with pytest.raises(ConnectionFailedError, match="could not be downloaded"):
        client.export_bundle("iris_app", out_path=str(out))
    assert out.read_bytes() == b"old"


@pytest.mark.parametrize("status, cls", [(409, ConflictError), (422, UnprocessableError), (404, NotFoundError)])
def test_export_bundle_api_errors(server, client, tmp_path, status, cls):
    server.route("POST", "/bundles", status, error("x", "trial 't-1' is RUNNING"))
    with pytest.raises(cls, match="RUNNING"):
        client.export_bundle("iris_app", trial_id="t-1", out_path=str(tmp_path / "b.tar.gz"))
    assert server.paths() == [("POST", "/bundles")]
    assert list(tmp_path.iterdir()) == []
