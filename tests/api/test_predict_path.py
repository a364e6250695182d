"""The predict path through the API on moto's DynamoDB: a switch, rollback, stop or new inference
job is seen by the very next request, in this process and in another instance built over the
same tables (a second Lambda); the one-process cache (the local stack's) reads an app's row once
and drops it on every write; metrics are seen at once and written once; cached callers lose
access at once when banned, revoked or logged out here."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib import wiring
from chalicelib.entities import Task, TrainJob, TrainJobStatus, Trial, TrialStatus
from chalicelib.ports import EndpointTimeout
from chalicelib.store.serving import ApplicationRepository
from kilele.model import serialize_params

from api_support import b64
from fake_endpoints import FakeEndpoints

MODEL_SOURCE = b"from kilele.model import BaseModel\n\nclass M(BaseModel):\n    pass\n"
QUERY = {"input": [1.0, 2.0]}


@pytest.fixture
def endpoints() -> FakeEndpoints:
    return FakeEndpoints()


@pytest.fixture
def service_overrides(endpoints) -> dict:
    return {"endpoints": endpoints}


@pytest.fixture
def dev(make_user):
    return make_user("MODEL_DEVELOPER")


def deploy(api, version: int, app: str = "iris") -> dict:
    """A STOPPED train job ``app`` v``version`` with one completed trial (stored directly), then
    an inference job of it through the API."""
    services = wiring.services()
    user = services.auth._users.get(api.email)
    model = api.call("POST", "/models", {"name": f"m-{app}-{version}", "task": "TABULAR_CLASSIFICATION",
                                         "model_class": "M", "model_file_base64": b64(MODEL_SOURCE)}).data
    now = datetime.now(timezone.utc)
    job = TrainJob(id=f"job-{app}-{version}", user_id=user.id, app=app, app_version=version,
                   task=Task.TABULAR_CLASSIFICATION, train_dataset_id="d", val_dataset_id="d", budget={},
                   model_ids=[model["id"]], created_at=now, status=TrainJobStatus.STOPPED)
    services.train_jobs._jobs.add(job)
    trial = Trial(id=f"{job.id}-t0", train_job_id=job.id, model_id=model["id"], model_name="m", worker_key="w",
                  number=1, knobs={}, fingerprint="0", created_at=now, params_key=f"trials/{job.id}/params.npz")
    services.train_jobs._trials.add(trial)
    services.train_jobs._trials.finish(trial.id, TrialStatus.COMPLETED, now, score=0.9)
    services.train_jobs._blobs.put_bytes(trial.params_key, serialize_params({"w": np.arange(3.0)}))
    response = api.call("POST", "/inference-jobs", {"app": app, "app_version": version})
    assert response.status_code == 201, response.data
    return api.call("GET", f"/inference-jobs/{app}/{version}").data


def asked(api, endpoints) -> str:
    """The endpoint that answered one predict request through the API."""
    response = api.call("POST", "/apps/iris/predict", QUERY)
    assert response.status_code == 200, response.data
    return endpoints.invocations[-1][0]


def asked_by(instance, user, endpoints) -> str:
    instance.predict.predict(user, "iris", QUERY)
    return endpoints.invocations[-1][0]


def test_a_change_made_here_is_seen_by_the_next_request_of_another_instance(dev, endpoints, settings):
    v1, v2 = deploy(dev, 1), deploy(dev, 2)
    other = wiring.build(settings, endpoints=endpoints)  # a second Lambda instance, same tables
    user = other.auth._users.get(dev.email)
    assert asked(dev, endpoints) == asked_by(other, user, endpoints) == v2["endpoint_name"]
    dev.call("POST", "/apps", {"name": "iris", "input_type": "floats", "default_output": "none",
                               "slo_micros": 1_000_000})
    for change, expected in [
        (lambda: dev.call("POST", "/apps/iris/version", {"version": 1}), v1),
        (lambda: dev.call("POST", "/apps/iris/rollback"), v2),
        (lambda: dev.call("POST", "/apps/iris/rollback"), v1),
        (lambda: dev.call("POST", "/apps/iris/rollback"), v2),
        (lambda: dev.call("POST", "/inference-jobs/iris/2/stop"), v1),
    ]:
        assert change().status_code == 200
        assert asked_by(other, user, endpoints) == expected["endpoint_name"]
        assert asked(dev, endpoints) == expected["endpoint_name"]
    v3 = deploy(dev, 3)
    assert asked_by(other, user, endpoints) == asked(dev, endpoints) == v3["endpoint_name"]
    assert dev.call("PATCH", "/apps/iris", {"default_output": "changed"}).status_code == 200
    endpoints.failure = EndpointTimeout("slow")
    assert other.predict.predict(user, "iris", QUERY)["output"] == "changed"
    endpoints.failure = None
    assert dev.call("DELETE", "/apps/iris").status_code == 200
    assert other.predict.predict(user, "iris", {"query": [1.0]})["prediction"] == {"0": 0.25, "1": 0.75}
    other.close()


def test_the_one_process_cache_reads_a_row_once_and_drops_it_on_writes(dev, endpoints, override_settings,
                                                                       monkeypatch):
    reads = []
    original = ApplicationRepository.serving_state
    monkeypatch.setattr(ApplicationRepository, "serving_state",
                        lambda self, *a: reads.append(a) or original(self, *a))
    override_settings(serving_state_cache=True)
    v1, v2 = deploy(dev, 1), deploy(dev, 2)
    reads.clear()
    for _ in range(3):
        assert asked(dev, endpoints) == v2["endpoint_name"]
    assert len(reads) == 1
    dev.call("POST", "/apps", {"name": "iris", "input_type": "floats", "default_output": "none",
                               "slo_micros": 1_000_000})
    dev.call("POST", "/apps/iris/version", {"version": 1})
    assert asked(dev, endpoints) == v1["endpoint_name"]
    dev.call("POST", "/inference-jobs/iris/1/stop")
    missing = dev.call("POST", "/apps/iris/predict", QUERY).data  # pinned to a stopped version: the default
    assert missing["default"] is True and "no running inference job" in missing["default_explanation"]
    dev.call("POST", "/apps/iris/rollback")
    assert asked(dev, endpoints) == v2["endpoint_name"]


def test_metrics_are_seen_at_once_and_written_once(dev, endpoints, settings, install_services):
    deploy(dev, 1)
    for _ in range(4):
        dev.call("POST", "/apps/iris/predict", {"queries": [[1.0], [2.0]]})
    counts = {m["name"]: m["count"] for m in dev.call("GET", "/apps/iris/metrics?minutes=5").data}
    assert (counts["kilele.requests"], counts["kilele.queries"]) == (4, 8)  # this process's, not written yet
    other = wiring.build(settings, endpoints=endpoints)
    user = other.auth._users.get(dev.email)
    stored = {m["name"]: m["count"] for m in other.predict.metrics(user, "iris", 5)}
    assert stored["kilele.requests"] == 0
    wiring.services().close()  # what the local stack does when it stops
    stored = {m["name"]: m["count"] for m in other.predict.metrics(user, "iris", 5)}
    assert (stored["kilele.requests"], stored["kilele.queries"], stored["kilele.latency_ms"]) == (4, 8, 4)
    counts = {m["name"]: m["count"] for m in dev.call("GET", "/apps/iris/metrics?minutes=5").data}
    assert counts["kilele.requests"] == 4  # written, and no longer counted twice
    other.close()


def test_a_bad_body_is_refused_as_before(dev, endpoints):
    deploy(dev, 1)
    broken = dev.call("POST", "/apps/iris/predict", raw=b'{"query": [1.0,')
    assert broken.status_code == 400 and "not valid JSON" in broken.data["error"]["message"]
    for body, phrase in [({"queries": "x"}, "'queries' must be a list"), ({"nope": 1}, "got nope"),
                         ([1], "must be a JSON object")]:
        response = dev.call("POST", "/apps/iris/predict", body)
        assert response.status_code == 400 and phrase in response.data["error"]["message"], response.data
    assert not [name for name, _ in endpoints.invocations]


def test_cached_callers_lose_access_at_once_here(dev, endpoints, superadmin):
    deploy(dev, 1)
    created = dev.call("POST", "/api-keys", {"name": "ci"}).data
    by_key = dev.anonymous()
    by_key.headers = {"x-api-key": created["key"]}
    assert by_key.call("POST", "/apps/iris/predict", QUERY).status_code == 200  # now cached
    assert dev.call("POST", "/apps/iris/predict", QUERY).status_code == 200
    assert dev.call("DELETE", f"/api-keys/{created['id']}").status_code == 200
    assert by_key.call("POST", "/apps/iris/predict", QUERY).status_code == 401
    second = dev.call("POST", "/api-keys", {"name": "ci2"}).data
    by_key.headers = {"x-api-key": second["key"]}
    assert by_key.call("POST", "/apps/iris/predict", QUERY).status_code == 200
    assert superadmin.call("POST", "/users/ban", {"email": dev.email}).status_code == 200
    for api in (by_key, dev):
        refused = api.call("POST", "/apps/iris/predict", QUERY)
        assert refused.status_code == 401 and "banned" in refused.data["error"]["message"]
    me = superadmin.call("GET", "/users/me")
    assert me.status_code == 200
    assert superadmin.call("DELETE", "/tokens/current").status_code == 200
    assert superadmin.call("GET", "/users/me").status_code == 401
