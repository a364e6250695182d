"""Large presigned uploads under moto (issue 13, finding 3): completion answers PENDING, the check
job records READY or INVALID with the message in DynamoDB, GET shows it, and a train job on a
dataset that is not READY is a 409 naming its status."""
from __future__ import annotations

from typing import Any

import pytest
import requests
from api_support import TABULAR_CSV

BAD_CSV = b"x1,x2,target\n1,2,a\n3,oops,b\n"


class QueuedChecks:
    """The check dispatcher of these tests: the test runs each job itself, after the answer."""

    def __init__(self) -> None:
        self.queued: list[str] = []

    def dispatch(self, dataset_id: str) -> None:
        self.queued.append(dataset_id)


@pytest.fixture
def checks(client, install_services) -> Any:
    """Services with a low threshold and a queued dispatcher (the user store lives in moto)."""
    queued = QueuedChecks()
    queued.services = install_services(settings_values={"dataset_check_threshold_bytes": 16},
                                       dataset_check_dispatcher=queued)
    return queued


@pytest.fixture
def dev(make_user):
    return make_user("MODEL_DEVELOPER")


def pending(api, content: bytes) -> dict[str, Any]:
    r = api.call("POST", "/datasets/uploads", {"name": "big", "task": "TABULAR_CLASSIFICATION",
                                              "size_bytes": len(content), "target_column": "target"})
    assert r.status_code == 201, r.data
    form = r.data["upload"]
    sent = requests.post(form["url"], data=form["fields"], files={"file": ("data", content)})
    assert sent.status_code in (200, 201, 204), sent.text
    r = api.call("POST", f"/datasets/{r.data['dataset']['id']}/complete")
    assert r.status_code == 200, r.data
    assert (r.data["status"], r.data["size_bytes"], r.data["error"]) == ("PENDING", len(content), None)
    return r.data


def test_a_large_upload_goes_pending_then_ready(dev, checks, bucket):
    dataset = pending(dev, TABULAR_CSV)
    assert checks.queued == [dataset["id"]]
    assert dev.call("GET", "/datasets").data == []  # not usable yet
    body = {"app": "a", "task": "TABULAR_CLASSIFICATION", "train_dataset_id": dataset["id"],
            "val_dataset_id": dataset["id"], "budget": {"MODEL_TRIAL_COUNT": 1}}
    r = dev.call("POST", "/train-jobs", body)
    assert r.status_code == 409, r.data
    assert "is not READY (it is PENDING)" in r.data["error"]["message"]

    checks.services.datasets.check_job.run(dataset["id"])
    r = dev.call("GET", f"/datasets/{dataset['id']}")
    assert r.status_code == 200 and r.data["status"] == "READY", r.data
    assert r.data["stats"]["rows"] == 3
    assert [d["id"] for d in dev.call("GET", "/datasets").data] == [dataset["id"]]
    assert bucket.read(f"datasets/{dataset['id']}/data") == TABULAR_CSV


def test_a_bad_large_upload_ends_invalid_with_the_message(dev, checks, bucket):
    dataset = pending(dev, BAD_CSV)
    checks.services.datasets.check_job.run(dataset["id"])
    r = dev.call("GET", f"/datasets/{dataset['id']}")
    assert (r.data["status"], r.data["error"]) == ("INVALID", "line 3, column 'x2': 'oops' is not a number")
    assert bucket.keys(f"datasets/{dataset['id']}/") == []
    body = {"app": "a", "task": "TABULAR_CLASSIFICATION", "train_dataset_id": dataset["id"],
            "val_dataset_id": dataset["id"], "budget": {"MODEL_TRIAL_COUNT": 1}}
    r = dev.call("POST", "/train-jobs", body)
    assert r.status_code == 409 and "it is INVALID: line 3" in r.data["error"]["message"], r.data


def test_small_uploads_stay_synchronous(dev, checks):
    r = dev.call("POST", "/datasets/uploads", {"name": "s", "task": "TABULAR_CLASSIFICATION", "size_bytes": 10})
    form = r.data["upload"]
    requests.post(form["url"], data=form["fields"], files={"file": ("data", b"a,target\n")})
    r = dev.call("POST", f"/datasets/{r.data['dataset']['id']}/complete")
    assert r.status_code == 422 and checks.queued == []  # checked at once: one row short, refused now
