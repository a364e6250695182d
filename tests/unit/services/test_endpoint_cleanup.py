"""Issue 13, finding 2 on fakes: every failure path of an inference job deletes what was made for
its endpoint, and admins can delete what earlier failures left (``cleanup_endpoints``)."""
from __future__ import annotations

import pytest

from chalicelib.entities import InferenceJobStatus, UserType
from chalicelib.errors import Forbidden
from chalicelib.ports import EndpointState

from .test_inference_jobs import DONE, dev, train  # noqa: F401 - fixtures


def test_a_failed_deploy_deletes_what_it_created(h, dev, train):  # noqa: F811
    train({0: [(0.7, False, DONE)]})
    h.fakes.endpoints.deploy_failure = RuntimeError("ResourceLimitExceeded")
    with pytest.raises(RuntimeError):
        h.services.inference_jobs.create_inference_job(dev, "app")
    (job,) = h.fakes.inference_jobs.items.values()
    assert job.status is InferenceJobStatus.ERRORED and h.fakes.endpoints.deleted == [job.endpoint_name]


def test_an_endpoint_that_failed_is_deleted_when_its_job_is_errored(h, dev, train):  # noqa: F811
    train({0: [(0.7, False, DONE)]})
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    name = h.fakes.inference_jobs.get(out["id"]).endpoint_name
    h.fakes.endpoints.state_override = EndpointState("Failed", reason="CannotStartContainerError")
    assert h.services.inference_jobs.get_inference_jobs_of_app(dev, "app")[0]["status"] == "ERRORED"
    assert h.fakes.endpoints.deleted == [name]
    h.services.inference_jobs.get_inference_jobs_of_app(dev, "app")  # deleted once, not at every read
    assert h.fakes.endpoints.deleted == [name]


def test_cleanup_deletes_the_endpoints_no_live_job_serves_for_admins_only(h, dev, train):  # noqa: F811
    train({0: [(0.7, False, DONE)]})
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    live = h.fakes.inference_jobs.get(out["id"]).endpoint_name
    stage = live.split("-")[1]
    # Left by failures before the fix, and another stage's endpoint (never touched).
    for name in (f"kilele-{stage}-leftover1", f"kilele-{stage}-leftover2", "kilele-otherstage-x"):
        h.fakes.endpoints.deploy(name, "bundles/x/bundle.tar.gz")
    with pytest.raises(Forbidden):
        h.services.inference_jobs.cleanup_endpoints(dev)
    result = h.services.inference_jobs.cleanup_endpoints(h.user(UserType.ADMIN))
    assert result == {"deleted": [f"kilele-{stage}-leftover1", f"kilele-{stage}-leftover2"], "failed": [],
                      "kept": [live]}
    assert sorted(h.fakes.endpoints.deployed) == sorted([live, "kilele-otherstage-x"])
    assert h.services.inference_jobs.get_inference_jobs_of_app(dev, "app")[0]["status"] == "RUNNING"
