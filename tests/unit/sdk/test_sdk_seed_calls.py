"""Seed 000's and 001's calls the SDK must have, with the seeds' behaviour (issue 10)."""
from __future__ import annotations

from kilele import Client

USER = {"id": "u-1", "email": "dev@kilele", "user_type": "APP_DEVELOPER"}
MODEL = {"id": "m-1", "name": "tree", "task": "TABULAR_CLASSIFICATION", "user_id": "u-1", "docker_image": None,
         "datetime_created": "2026-12-01T10:00:00+00:00"}
JOB = {"id": "ij-1", "app": "iris_app", "app_version": 1, "status": "STOPPED",
       "predictor_host": "127.0.0.1:8000/apps/iris_app", "query_host": "127.0.0.1:8000/apps/iris_app",
       "workers": [{"service_id": "kilele-local-ij-1", "status": "STOPPED", "replicas": 1,
                    "trial": {"id": "t-1", "model_name": "tree", "knobs": {}, "score": 0.9}}]}


def test_get_current_user_is_none_once_the_session_expired(server):
    server.route("GET", "/users/me", 401, {"error": {"code": "unauthenticated", "message": "the session expired"}})
    client = Client(base_url=server.url, token="expired-token")
    assert client.get_current_user() is None  # seed 001: None when not logged in


def test_get_models_of_task_lists_the_task_models(server):
    server.route("GET", "/models", 200, [MODEL])
    client = Client(base_url=server.url, token="t")
    assert client.get_models_of_task(task="TABULAR_CLASSIFICATION") == [MODEL]
    assert server.last().query == {"task": ["TABULAR_CLASSIFICATION"]}


def test_get_inference_job_is_the_newest_of_the_app_version(server):
    server.route("GET", "/inference-jobs/iris_app/-1/latest", 200, JOB)
    server.route("GET", "/inference-jobs/iris_app/2/latest", 200, JOB)
    client = Client(base_url=server.url, token="t")
    assert client.get_inference_job("iris_app") == JOB
    assert client.get_inference_job(app="iris_app", app_version=2)["workers"][0]["replicas"] == 1
