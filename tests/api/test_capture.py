"""Traffic capture through the API on moto's S3: an app's capture percentage (off by default,
set on registration or by PATCH, bad values refused), its predict traffic written in SageMaker
Data Capture's layout with the query ids the answers carried, and ground-truth labels sent by
those ids (validated; stored in Model Monitor's layout; joined by the reader)."""
from __future__ import annotations

import json
import re

import pytest

from chalicelib import wiring
from chalicelib.capture_reader import capture_frame, ground_truth_frame, join_labels
from chalicelib.ports import EndpointTimeout

from api_support import assert_error
from fake_endpoints import FakeEndpoints
from test_serving import deploy

HOURLY = re.compile(r"^capture/[^/]+/iris/(?P<endpoint>[^/]+)/AllTraffic/\d{4}/\d\d/\d\d/\d\d/[^/]+\.jsonl$")
LABELS = re.compile(r"^ground-truth/[^/]+/iris/\d{4}/\d\d/\d\d/\d\d/[^/]+\.jsonl$")


@pytest.fixture
def endpoints() -> FakeEndpoints:
    return FakeEndpoints()


@pytest.fixture
def service_overrides(endpoints) -> dict:
    return {"endpoints": endpoints}


@pytest.fixture
def dev(endpoints, make_user):
    return make_user("MODEL_DEVELOPER")


def register(api, **extra):
    body = {"name": "iris", "input_type": "floats", "default_output": "unknown", "slo_micros": 5_000_000, **extra}
    response = api.call("POST", "/apps", body)
    assert response.status_code == 201, response.data
    return response.data


def captured(bucket) -> list[str]:
    wiring.services().predict.flush_capture()
    return bucket.keys("capture/")


def test_capture_is_off_by_default_and_set_per_app(dev, bucket):
    deploy(dev)
    assert register(dev)["capture_percent"] == 0
    dev.call("POST", "/apps/iris/predict", {"query": [1.0, 2.0]})
    assert captured(bucket) == []
    assert dev.call("PATCH", "/apps/iris", {"capture_percent": 25}).data["capture_percent"] == 25
    settings = dev.call("GET", "/apps/iris/capture").data
    assert settings["capture_percent"] == 25
    assert re.fullmatch(r"s3://[^/]+/capture/[^/]+/iris/", settings["capture_uri"])
    assert re.fullmatch(r"s3://[^/]+/ground-truth/[^/]+/iris/", settings["ground_truth_uri"])
    assert dev.call("GET", "/apps/iris").data["capture_percent"] == 25


@pytest.mark.parametrize("value", [101, -1, "50", True, None, 1e309])
def test_bad_capture_percentages_are_refused(dev, value):
    register(dev)
    if value is None:  # null in a PATCH leaves the setting as it is
        assert dev.call("PATCH", "/apps/iris", {"capture_percent": None}).data["capture_percent"] == 0
        return
    response = dev.call("PATCH", "/apps/iris", {"capture_percent": value})
    assert_error(response, 400, "invalid_input", "capture_percent")
    assert dev.call("GET", "/apps/iris").data["capture_percent"] == 0


def test_an_unregistered_app_has_no_capture_settings(dev):
    assert_error(dev.call("GET", "/apps/nope/capture"), 404, "not_found", "nope")


def test_captured_traffic_carries_the_answers_query_ids(dev, bucket, endpoints):
    job = deploy(dev)
    register(dev, capture_percent=100)
    rafiki = dev.call("POST", "/apps/iris/predict", {"query": [1.0, 2.0]}).data
    batch = dev.call("POST", "/apps/iris/predict", {"queries": [[3.0], [4.0]]}).data
    clipper = dev.call("POST", "/apps/iris/predict", {"input_batch": [[5.0]]}).data["batch_predictions"]
    serving = dev.call("POST", "/apps/iris/predict", {"instances": [[6.0]]}).data
    endpoints.failure = EndpointTimeout("slow")
    defaulted = dev.call("POST", "/apps/iris/predict", {"query": [7.0]}).data
    assert defaulted["default"] is True
    keys = captured(bucket)
    assert keys and all(HOURLY.match(k) for k in keys)
    assert {HOURLY.match(k)["endpoint"] for k in keys} == {job_endpoint(job), "default-output"}
    frame = capture_frame(bucket.read(k) for k in keys)
    ids = [rafiki["query_id"], *batch["query_ids"], clipper[0]["query_id"], *serving["query_ids"], defaulted["query_id"]]
    assert sorted(frame["query_id"]) == sorted(str(i) for i in ids)
    by_id = frame.set_index("query_id")
    assert by_id.loc[str(rafiki["query_id"]), "input"] == [1.0, 2.0]
    assert by_id.loc[str(rafiki["query_id"]), "prediction"] == {"0": 0.25, "1": 0.75}
    assert by_id.loc[str(defaulted["query_id"]), "prediction"] == "unknown"
    assert bool(by_id.loc[str(defaulted["query_id"]), "endpoint_default"]) is True
    assert frame["timestamp"].notna().all()


def job_endpoint(created: dict) -> str:
    return wiring.services().inference_jobs._jobs.get(created["id"]).endpoint_name


def test_labels_are_stored_by_query_id_and_join_the_captured_rows(dev, bucket):
    deploy(dev)
    register(dev, capture_percent=100)
    answer = dev.call("POST", "/apps/iris/predict", {"queries": [[1.0], [2.0], [3.0]]}).data
    first, second, third = answer["query_ids"]
    response = dev.call("POST", "/apps/iris/labels", {"labels": [{"query_id": first, "label": "setosa"},
                                                                 {"query_id": str(second), "label": [0, 1]}]})
    assert response.status_code == 201, response.data
    assert response.data["received"] == 2 and response.data["ground_truth_uri"].endswith("/iris/")
    (key,) = bucket.keys("ground-truth/")
    assert LABELS.match(key)
    record = json.loads(bucket.read(key).splitlines()[0])
    assert record == {"groundTruthData": {"data": '"setosa"', "encoding": "JSON"},
                      "eventMetadata": {"eventId": str(first)}, "eventVersion": "0"}
    frame = join_labels(capture_frame(bucket.read(k) for k in captured(bucket)),
                        ground_truth_frame(bucket.read(k) for k in bucket.keys("ground-truth/")))
    labels = frame.set_index("query_id")["label"]
    assert labels[str(first)] == "setosa" and labels[str(second)] == [0, 1] and labels.isna()[str(third)]


@pytest.mark.parametrize("body, phrase", [
    ({"labels": []}, "labels"),
    ({}, "labels"),
    ([{"query_id": 1, "label": 0}], "body"),
    ({"labels": [{"query_id": 1}]}, "label"),
    ({"labels": [{"label": 1}]}, "query_id"),
    ({"labels": [{"query_id": 1, "label": None}]}, "null"),
    ({"labels": [{"query_id": True, "label": 1}]}, "query_id"),
    ({"labels": [{"query_id": -1, "label": 1}]}, "query_id"),
    ({"labels": [{"query_id": 2 ** 53, "label": 1}]}, "query_id"),
    ({"labels": [{"query_id": 1.5, "label": 1}]}, "query_id"),
    ({"labels": [{"query_id": "a b", "label": 1}]}, "query_id"),
    ({"labels": [{"query_id": "x" * 65, "label": 1}]}, "query_id"),
    ({"labels": [{"query_id": 1, "label": 1, "extra": 2}]}, "extra"),
    ({"labels": [{"query_id": 1, "label": 1}] * 1001}, "labels"),
    ({"labels": [{"query_id": 7, "label": 1}, {"query_id": "7", "label": 2}]}, "twice"),
])
def test_bad_labels_are_refused_and_nothing_is_stored(dev, bucket, body, phrase):
    register(dev)
    response = dev.call("POST", "/apps/iris/labels", body)
    assert response.status_code in (400, 422), response.data
    assert phrase in response.data["error"]["message"]
    assert bucket.keys("ground-truth/") == []


def test_labels_of_an_unknown_app_or_without_a_login(dev, client, bucket):
    assert_error(dev.call("POST", "/apps/nope/labels", {"labels": [{"query_id": 1, "label": 0}]}), 404, "not_found")
    register(dev)
    assert client.anonymous().call("POST", "/apps/iris/labels",
                                   {"labels": [{"query_id": 1, "label": 0}]}).status_code == 401
    assert bucket.keys("ground-truth/") == []
