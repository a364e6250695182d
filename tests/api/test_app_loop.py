"""An app's retrain policy and timeline through the API under moto (issue 12 item 6): 4xx for bad
policies and others' apps, the policy round-trips, its setting is on the timeline."""
from __future__ import annotations

from api_support import assert_error
from test_capture import register
from test_datasets import create


def test_a_retrain_policy_and_the_timeline(make_user):
    dev = make_user("MODEL_DEVELOPER")
    register(dev, name="fraud")
    holdout = create(dev, name="holdout")
    path = "/apps/fraud/retrain-policy"
    assert_error(dev.call("GET", path), 404, "not_found", "no retrain policy")
    assert_error(dev.call("PUT", path, {"monitors": [], "dataset": "labelled_captured_traffic"}), 400, "invalid_input")
    assert_error(dev.call("PUT", path, {"monitors": ["drift"], "dataset": "labelled_captured_traffic",
                                        "deploy": True}), 422, "unprocessable", "holdout_dataset_id")
    assert_error(dev.call("PUT", path, {"monitors": ["drift"], "dataset": {"dataset_id": "nope"}}),
                 404, "not_found", "policy.dataset")
    assert_error(dev.call("PUT", "/apps/other/retrain-policy", {"monitors": ["drift"],
                                                                "dataset": "labelled_captured_traffic"}), 404, "not_found")
    body = {"monitors": ["drift"], "dataset": "labelled_captured_traffic", "budget": {"MODEL_TRIAL_COUNT": 4},
            "deploy": True, "holdout_dataset_id": holdout["id"]}
    made = dev.call("PUT", path, body)
    assert made.status_code == 200, made.data
    assert made.data == {"app": "fraud", "monitors": ["drift"], "dataset": "labelled_captured_traffic",
                         "budget": {"MODEL_TRIAL_COUNT": 4}, "deploy": True, "holdout_dataset_id": holdout["id"],
                         "retrain": None}
    assert dev.call("GET", path).data == made.data
    other = make_user("MODEL_DEVELOPER")
    assert_error(other.call("GET", path), 404, "not_found")
    assert_error(other.call("GET", "/apps/fraud/timeline"), 404, "not_found")
    [entry] = dev.call("GET", "/apps/fraud/timeline").data
    assert entry["step"] == "policy_set" and "drift" in entry["reason"]
    assert dev.call("DELETE", path).data == {"app": "fraud", "removed": True}
    assert [e["step"] for e in dev.call("GET", "/apps/fraud/timeline").data] == ["policy_set", "policy_removed"]
