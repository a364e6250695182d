"""Traffic capture in the predict service, on the fakes: off unless the app asks, every request
at 100 %, about the asked share of requests in between, records carrying the query ids the
answers gave, the default output captured and marked; and labels refused or stored."""
from __future__ import annotations

import json

import pytest

from chalicelib.entities import UserType
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.ports import EndpointTimeout
from unit.services.test_predict_answers import serve


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")


def records(h) -> list[dict]:
    h.services.predict.flush_capture()
    return [json.loads(line) for key, data in sorted(h.fakes.blobs.objects.items()) if key.startswith("capture/")
            for line in data.decode().splitlines()]


def test_capture_is_off_unless_the_app_asks(h, dev):
    serve(h, dev)
    h.services.predict.predict(dev, "app", {"query": [1]})  # unregistered: nothing to ask with
    h.services.apps.register_application(dev, "app", None, "fallback", 1_000_000)
    h.services.predict.predict(dev, "app", {"query": [1]})
    assert records(h) == []


def test_at_100_percent_every_query_is_captured_with_its_answers_id(h, dev):
    serve(h, dev)
    h.services.apps.register_application(dev, "app", None, "fallback", 1_000_000, capture_percent=100)
    batch = h.services.predict.predict(dev, "app", {"queries": [[1], [2]]})
    h.fakes.endpoints.failure = EndpointTimeout("slow")
    defaulted = h.services.predict.predict(dev, "app", {"input": [3]})
    got = {r["eventMetadata"]["inferenceId"]: r for r in records(h)}
    assert set(got) == {str(i) for i in batch["query_ids"]} | {str(defaulted["query_id"])}
    first = got[str(batch["query_ids"][0])]
    assert json.loads(first["captureData"]["endpointInput"]["data"]) == [1]
    assert json.loads(first["captureData"]["endpointOutput"]["data"]) == batch["predictions"][0]
    assert got[str(defaulted["query_id"])]["eventMetadata"]["kileleDefault"] is True


def test_a_share_of_requests_is_captured(h, dev):
    serve(h, dev)
    h.services.apps.register_application(dev, "app", None, "fallback", 1_000_000, capture_percent=20)
    for _ in range(1000):
        h.services.predict.predict(dev, "app", {"query": [1]})
    assert 120 <= len(records(h)) <= 280  # 200 expected; 6 standard deviations either side


def test_labels_need_a_registered_app_and_distinct_ids(h, dev):
    with pytest.raises(NotFound):
        h.services.labels.send_labels(dev, "app", [("1", "a")])
    h.services.apps.register_application(dev, "app", None, "fallback", 1_000_000)
    with pytest.raises(Unprocessable, match="twice"):
        h.services.labels.send_labels(dev, "app", [("1", "a"), ("1", "b")])
    assert not [k for k in h.fakes.blobs.objects if k.startswith("ground-truth/")]
    assert h.services.labels.send_labels(dev, "app", [("1", "a"), ("2", {"y": 1})])["received"] == 2
    (key,) = [k for k in h.fakes.blobs.objects if k.startswith("ground-truth/")]
    assert [json.loads(line)["eventMetadata"]["eventId"] for line in h.fakes.blobs.objects[key].splitlines()] == ["1", "2"]
