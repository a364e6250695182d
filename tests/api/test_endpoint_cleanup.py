"""Issue 13, finding 2 through the API: POST /jobs/cleanup-endpoints (admins) deletes the
endpoints no live inference job serves (left by failures before the fix) and keeps the rest."""
from __future__ import annotations

import pytest

from fake_endpoints import FakeEndpoints
from test_serving import deploy, model_dev  # noqa: F401 - the fixture and the helper


@pytest.fixture
def endpoints() -> FakeEndpoints:
    return FakeEndpoints()


@pytest.fixture
def service_overrides(endpoints) -> dict:
    return {"endpoints": endpoints}


def test_admins_delete_endpoints_no_live_job_serves(model_dev, endpoints, make_user, settings):  # noqa: F811
    live = deploy(model_dev)
    [live_name] = list(endpoints.deployed)
    leftover = f"kilele-{settings.stage}-left-by-a-failure"
    endpoints.deploy(leftover, "bundles/old/bundle.tar.gz")

    refused = model_dev.call("POST", "/jobs/cleanup-endpoints")
    assert refused.status_code == 403 and leftover in endpoints.deployed
    admin = make_user("ADMIN")
    cleaned = admin.call("POST", "/jobs/cleanup-endpoints")
    assert cleaned.status_code == 200, cleaned.data
    assert cleaned.data == {"deleted": [leftover], "failed": [], "kept": [live_name]}
    assert list(endpoints.deployed) == [live_name]
    assert model_dev.call("GET", f"/inference-jobs/{live['app']}").data[0]["status"] == "RUNNING"
