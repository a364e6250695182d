"""Train-job routes: what a create refuses before anything is stored or started."""
from __future__ import annotations

import pytest


@pytest.fixture
def dev(make_user):
    return make_user("MODEL_DEVELOPER")


def test_train_args_too_large_for_the_workflow_are_a_413_naming_the_limit(dev):
    body = {"app": "big", "task": "TABULAR_CLASSIFICATION", "train_dataset_id": "d1", "val_dataset_id": "d2",
            "budget": {"MODEL_TRIAL_COUNT": 1}, "train_args": {"blob": "x" * 200_000}}
    r = dev.call("POST", "/train-jobs", body)
    assert r.status_code == 413, r.data
    assert r.data["error"]["code"] == "payload_too_large"
    assert "131072" in r.data["error"]["message"] and "256 KiB" in r.data["error"]["message"]
    assert dev.call("GET", "/train-jobs").data == []


def test_gpus_asked_where_the_platform_has_none_are_a_422_saying_why(dev, override_settings):
    override_settings(gpus_available=False)
    body = {"app": "gpu", "task": "TABULAR_CLASSIFICATION", "train_dataset_id": "d1", "val_dataset_id": "d2",
            "budget": {"MODEL_TRIAL_COUNT": 1, "GPU_COUNT": 1}}
    r = dev.call("POST", "/train-jobs", body)
    assert r.status_code == 422, r.data
    assert r.data["error"]["code"] == "unprocessable"
    assert r.data["error"]["message"].startswith("budget GPU_COUNT 1 asked, but this platform has no GPU for trials")
    assert dev.call("GET", "/train-jobs").data == []
