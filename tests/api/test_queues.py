"""The queue API (Cluster Serving's pub/sub inference) under in-process moto: enqueue to SQS,
the consumer's batch processing with a fake predict, results, dequeue and expiry."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from chalicelib.errors import InvalidInput, NotFound
from chalicelib.resources import SERVING_REQUESTS_QUEUE
from chalicelib.services.predict import Outcome


class FakePredict:
    """``predict_queries`` stand-in: class probabilities from the sum of each query, with
    scripted failures per app (``fail[app] = error``) and per query (``bad`` values)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[Any]]] = []
        self.fail: dict[str, Exception] = {}
        self.bad: set[Any] = set()
        self._lock = threading.Lock()

    def __call__(self, user_id: str, app: str, queries: list[Any]) -> Outcome:
        with self._lock:
            self.calls.append((user_id, app, list(queries)))
        if app in self.fail:
            raise self.fail[app]
        for query in queries:
            if json.dumps(query) in self.bad:
                raise InvalidInput(f"query {query!r} is not a list of numbers")
        return Outcome([{"sum": sum(q) if isinstance(q, list) else q} for q in queries], batch_size=len(queries))


@pytest.fixture
def sqs(settings):
    return boto3.client("sqs", region_name=settings.region)


@pytest.fixture
def queue_url(client, sqs, settings) -> str:
    return sqs.get_queue_url(QueueName=settings.resource_name(SERVING_REQUESTS_QUEUE.name))["QueueUrl"]


@pytest.fixture
def queues(client):
    """The queue service of the app under test."""
    from chalicelib import wiring

    return wiring.services().queues


@pytest.fixture
def fake_predict(queues, monkeypatch) -> FakePredict:
    fake = FakePredict()
    monkeypatch.setattr(queues, "_predict", fake)
    return fake


@pytest.fixture
def dev(make_user):
    return make_user("APP_DEVELOPER")


def user_id(api) -> str:
    return api.call("GET", "/users/me").data["id"]


def items(*uris: str, data: Any = None) -> dict:
    return {"items": [{"uri": uri, "data": data if data is not None else [i, 1.5]} for i, uri in enumerate(uris)]}


def receive_all(sqs, queue_url: str) -> list[dict]:
    messages: list[dict] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def waiting(sqs, queue_url: str, attribute: str = "ApproximateNumberOfMessages") -> int:
    return int(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[attribute])["Attributes"][attribute])


def process_all(queues, sqs, queue_url: str) -> None:
    """What the consumer does: batches of up to 10 messages, deleted after processing."""
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return
        queues.process([m["Body"] for m in batch])
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])


# ---------------------------------------------------------------------------- enqueue


def test_enqueue_sends_one_message_per_item(dev, sqs, queue_url):
    uris = [f"img-{i}" for i in range(25)]
    response = dev.call("POST", "/queues/iris/items", items(*uris))
    assert response.status_code == 202, response.data
    assert response.data == {"enqueued": 25}
    bodies = [json.loads(m["Body"]) for m in receive_all(sqs, queue_url)]
    assert sorted(b["uri"] for b in bodies) == sorted(uris)
    first = next(b for b in bodies if b["uri"] == "img-3")
    assert first["user_id"] == user_id(dev) and first["queue"] == "iris" and first["data"] == [3, 1.5]
    assert datetime.fromisoformat(first["enqueued_at"]) <= datetime.now(timezone.utc)


@pytest.mark.parametrize("body, fragment", [
    ({"items": []}, "items"),
    (items(*[f"u{i}" for i in range(101)]), "items"),
    ({"items": [{"uri": "", "data": 1}]}, "uri"),
    ({"items": [{"uri": "x" * 257, "data": 1}]}, "uri"),
    ({"items": [{"uri": "a/b", "data": 1}]}, "uri"),
    ({"items": [{"uri": "a b", "data": 1}]}, "uri"),
    ({"items": [{"uri": "a"}]}, "data"),
    ({"items": [{"uri": "a", "data": 1, "extra": 2}]}, "extra"),
    ({"items": [{"uri": "a", "data": 1}, {"uri": "a", "data": 2}]}, "appears twice"),
    ({}, "items"),
])
def test_enqueue_validation_is_400_and_enqueues_nothing(dev, sqs, queue_url, body, fragment):
    response = dev.call("POST", "/queues/iris/items", body)
    assert response.status_code == 400, response.data
    assert response.data["error"]["code"] == "invalid_input" and fragment in response.data["error"]["message"]
    assert waiting(sqs, queue_url) == 0


def test_a_bad_queue_name_is_400(dev, sqs, queue_url):
    response = dev.call("POST", "/queues/bad%21name/items", items("a"))
    assert response.status_code == 400 and "queue name" in response.data["error"]["message"]
    assert waiting(sqs, queue_url) == 0


def test_an_item_over_the_sqs_message_limit_is_413_before_sending(dev, sqs, queue_url):
    body = {"items": [{"uri": "small", "data": [1, 2]}, {"uri": "big", "data": "x" * (256 * 1024)}]}
    response = dev.call("POST", "/queues/iris/items", body)
    assert response.status_code == 413, response.data
    assert "'big'" in response.data["error"]["message"] and "262144" in response.data["error"]["message"]
    assert waiting(sqs, queue_url) == 0


def test_large_items_are_sent_in_batches_under_the_limit(dev, sqs, queue_url):
    # 5 items of ~100 KiB: one SendMessageBatch would exceed 256 KiB in all
    payload = "y" * (100 * 1024)
    response = dev.call("POST", "/queues/iris/items", {"items": [{"uri": f"u{i}", "data": payload} for i in range(5)]})
    assert response.status_code == 202, response.data
    assert len(receive_all(sqs, queue_url)) == 5


def test_a_full_queue_is_503_and_nothing_is_enqueued(dev, override_settings, sqs, queue_url):
    override_settings(serving_queue_max_backlog=3)
    assert dev.call("POST", "/queues/iris/items", items("a", "b")).status_code == 202
    response = dev.call("POST", "/queues/iris/items", items("c", "d"))
    assert response.status_code == 503, response.data
    assert response.data["error"]["code"] == "unavailable" and "queue full" in response.data["error"]["message"]
    assert waiting(sqs, queue_url) == 2
    assert dev.call("POST", "/queues/iris/items", items("c")).status_code == 202


def test_entries_sqs_refuses_are_reported_for_retry(dev, queues, sqs, queue_url, monkeypatch):
    real = queues._requests._sqs.send_message_batch

    def flaky(QueueUrl, Entries):  # noqa: N803 (boto3's names)
        refused = [e for e in Entries if json.loads(e["MessageBody"])["uri"] in ("u3", "u11")]
        answer = real(QueueUrl=QueueUrl, Entries=[e for e in Entries if e not in refused])
        answer["Failed"] = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
                            for e in refused]
        return answer

    monkeypatch.setattr(queues._requests._sqs, "send_message_batch", flaky)
    response = dev.call("POST", "/queues/iris/items", items(*[f"u{i}" for i in range(15)]))
    assert response.status_code == 503, response.data
    error = response.data["error"]
    assert error["failed"] == ["u3", "u11"] and error["enqueued"] == 13
    assert "retry" in error["message"] and "InternalError" in error["message"]
    assert sorted(json.loads(m["Body"])["uri"] for m in receive_all(sqs, queue_url)) == sorted(
        f"u{i}" for i in range(15) if i not in (3, 11))


def test_a_batch_sqs_rejects_whole_fails_it_and_the_rest(dev, queues, sqs, queue_url, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    real = queues._requests._sqs.send_message_batch
    calls = []

    def second_fails(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise EndpointConnectionError(endpoint_url="https://sqs")
        return real(**kwargs)

    monkeypatch.setattr(queues._requests._sqs, "send_message_batch", second_fails)
    response = dev.call("POST", "/queues/iris/items", items(*[f"u{i}" for i in range(25)]))
    assert response.status_code == 503
    assert response.data["error"]["failed"] == [f"u{i}" for i in range(10, 25)]
    assert len(calls) == 2 and waiting(sqs, queue_url) == 10


def test_the_queue_api_needs_a_login(client):
    assert client.call("POST", "/queues/iris/items", items("a")).status_code == 401
    assert client.call("GET", "/queues/iris/results/a").status_code == 401
    assert client.call("POST", "/queues/iris/dequeue").status_code == 401


# ---------------------------------------------------------------------------- the consumer


def test_the_consumer_batches_per_user_and_queue(dev, make_user, queues, fake_predict, sqs, queue_url):
    other = make_user("APP_DEVELOPER")
    assert dev.call("POST", "/queues/iris/items", items("a", "b", "c")).status_code == 202
    assert dev.call("POST", "/queues/mnist/items", items("m1", "m2")).status_code == 202
    assert other.call("POST", "/queues/iris/items", items("a", "z")).status_code == 202
    messages = receive_all(sqs, queue_url)
    assert len(messages) == 7

    report = queues.process([m["Body"] for m in messages])
    assert report.groups == 3 and report.results == 7 and report.errors == 0
    calls = {(user, app): sorted(map(tuple, queries)) for user, app, queries in fake_predict.calls}
    assert len(fake_predict.calls) == 3
    assert calls == {
        (user_id(dev), "iris"): [(0, 1.5), (1, 1.5), (2, 1.5)],
        (user_id(dev), "mnist"): [(0, 1.5), (1, 1.5)],
        (user_id(other), "iris"): [(0, 1.5), (1, 1.5)],
    }
    result = dev.call("GET", "/queues/iris/results/c")
    assert result.status_code == 200, result.data
    assert result.data["uri"] == "c" and result.data["status"] == "ok" and result.data["value"] == {"sum": 3.5}
    assert result.data["default"] is False and result.data["error"] is None
    # each user sees only their own queue's results
    assert other.call("GET", "/queues/iris/results/z").data["value"] == {"sum": 2.5}
    assert dev.call("GET", "/queues/iris/results/z").status_code == 404


def test_a_failing_group_gets_error_results_and_the_others_their_predictions(dev, queues, fake_predict, sqs,
                                                                             queue_url):
    fake_predict.fail["down"] = NotFound("app 'down' has no running inference job")
    dev.call("POST", "/queues/down/items", items("d1", "d2"))
    dev.call("POST", "/queues/iris/items", items("i1", "i2"))
    report = queues.process([m["Body"] for m in receive_all(sqs, queue_url)])
    assert report.results == 4 and report.errors == 2
    failed = dev.call("GET", "/queues/down/results/d2")
    assert failed.status_code == 200 and failed.data["status"] == "error" and failed.data["value"] is None
    assert "has no running inference job" in failed.data["error"]
    assert dev.call("GET", "/queues/iris/results/i2").data["status"] == "ok"


def test_one_bad_query_does_not_fail_its_batch(dev, queues, fake_predict, sqs, queue_url):
    fake_predict.bad.add(json.dumps("oops"))
    dev.call("POST", "/queues/iris/items", {"items": [{"uri": "good", "data": [1, 2]}, {"uri": "bad", "data": "oops"},
                                                     {"uri": "good2", "data": [3]}]})
    queues.process([m["Body"] for m in receive_all(sqs, queue_url)])
    assert dev.call("GET", "/queues/iris/results/good").data["value"] == {"sum": 3}
    assert dev.call("GET", "/queues/iris/results/good2").data["value"] == {"sum": 3}
    bad = dev.call("GET", "/queues/iris/results/bad").data
    assert bad["status"] == "error" and "not a list of numbers" in bad["error"]


def test_an_unexpected_predict_failure_is_an_error_result(dev, queues, fake_predict, sqs, queue_url):
    fake_predict.fail["iris"] = RuntimeError("boom")
    dev.call("POST", "/queues/iris/items", items("a"))
    queues.process([m["Body"] for m in receive_all(sqs, queue_url)])
    result = dev.call("GET", "/queues/iris/results/a").data
    assert result["status"] == "error" and "internal error (RuntimeError)" in result["error"]


def test_an_app_without_an_inference_job_gets_an_error_result(dev, queues, sqs, queue_url):
    # the real predict_queries: enqueueing is allowed, the result says why there is no prediction
    assert dev.call("POST", "/queues/nojob/items", items("a", "b")).status_code == 202
    queues.process([m["Body"] for m in receive_all(sqs, queue_url)])
    result = dev.call("GET", "/queues/nojob/results/a")
    assert result.status_code == 200 and result.data["status"] == "error"
    assert "there is no app 'nojob'" in result.data["error"]  # an unknown app says so


def test_malformed_messages_are_skipped_not_fatal(dev, queues, fake_predict):
    good = json.dumps({"user_id": user_id(dev), "queue": "iris", "uri": "ok", "data": [1], "enqueued_at": "x"})
    report = queues.process(["not json", json.dumps({"uri": "x"}), good])
    assert len(report.malformed) == 2 and report.results == 1
    assert dev.call("GET", "/queues/iris/results/ok").data["value"] == {"sum": 1}


def test_the_same_uri_twice_in_a_batch_keeps_one_result(dev, queues, fake_predict, sqs, queue_url):
    dev.call("POST", "/queues/iris/items", {"items": [{"uri": "a", "data": [1]}]})
    dev.call("POST", "/queues/iris/items", {"items": [{"uri": "a", "data": [2]}]})
    report = queues.process([m["Body"] for m in receive_all(sqs, queue_url)])
    assert report.results == 1
    assert dev.call("GET", "/queues/iris/results/a").data["value"] in ({"sum": 1}, {"sum": 2})


# ---------------------------------------------------------------------------- results and dequeue


def test_a_pending_or_unknown_uri_is_404(dev, sqs, queue_url):
    dev.call("POST", "/queues/iris/items", items("pending"))
    for uri in ("pending", "never"):
        response = dev.call("GET", f"/queues/iris/results/{uri}")
        assert response.status_code == 404
        assert f"no result yet for {uri}" in response.data["error"]["message"]
    assert dev.call("GET", "/queues/iris/results/a%20b").status_code == 400


def test_dequeue_returns_every_result_once(dev, queues, fake_predict, sqs, queue_url):
    fake_predict.fail["down"] = NotFound("app 'down' has no running inference job")
    dev.call("POST", "/queues/iris/items", items("a", "b", "c"))
    dev.call("POST", "/queues/down/items", items("x"))
    process_all(queues, sqs, queue_url)

    first = dev.call("POST", "/queues/iris/dequeue")
    assert first.status_code == 200, first.data
    assert first.data == {"results": {"a": {"sum": 1.5}, "b": {"sum": 2.5}, "c": {"sum": 3.5}}, "errors": {}}
    assert dev.call("POST", "/queues/iris/dequeue").data == {"results": {}, "errors": {}}
    assert dev.call("GET", "/queues/iris/results/a").status_code == 404
    down = dev.call("POST", "/queues/down/dequeue").data
    assert down["results"] == {} and "no running inference job" in down["errors"]["x"]


def test_a_result_is_taken_by_one_dequeuer_only(dev, queues, fake_predict, sqs, queue_url):
    from chalicelib.entities import queue_key

    dev.call("POST", "/queues/iris/items", items("a"))
    process_all(queues, sqs, queue_url)
    [result] = queues._results.list(queue_key(user_id(dev), "iris"))
    assert queues._results.take(result) is True
    assert queues._results.take(result) is False


def test_expired_results_are_invisible(dev, queues, fake_predict, sqs, queue_url):
    from chalicelib.store.models import ServingResultItem
    from chalicelib.entities import queue_key

    dev.call("POST", "/queues/iris/items", items("old"))
    clock = queues._clock
    queues._clock = lambda: datetime.now(timezone.utc) - timedelta(hours=2)  # written 2 h ago, kept 1 h
    try:
        process_all(queues, sqs, queue_url)
    finally:
        queues._clock = clock
    dev.call("POST", "/queues/iris/items", items("new"))
    process_all(queues, sqs, queue_url)

    assert ServingResultItem.get(queue_key(user_id(dev), "iris"), "old")  # moto never deletes TTL items
    assert dev.call("GET", "/queues/iris/results/old").status_code == 404
    assert dev.call("GET", "/queues/iris/results/new").status_code == 200
    assert dev.call("POST", "/queues/iris/dequeue").data == {"results": {"new": {"sum": 1.5}}, "errors": {}}


def test_result_ttl_comes_from_the_settings(dev, override_settings, sqs, queue_url, monkeypatch):
    from chalicelib import wiring

    override_settings(serving_result_ttl_seconds=60)
    queues = wiring.services().queues
    monkeypatch.setattr(queues, "_predict", FakePredict())
    dev.call("POST", "/queues/iris/items", items("a"))
    process_all(queues, sqs, queue_url)
    result = dev.call("GET", "/queues/iris/results/a").data
    created = datetime.fromisoformat(result["created_at"])
    assert result["expires_at"] == int(created.timestamp()) + 60


# ---------------------------------------------------------------------------- the local consumer


def _wait(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_local_consumer_answers_enqueued_items(dev, queues, fake_predict, sqs, queue_url):
    from chalicelib.local.serving_consumer import ServingQueueConsumer

    consumer = ServingQueueConsumer(queue_url, sqs, queues.process, wait_seconds=0)
    consumer.start()
    try:
        assert dev.call("POST", "/queues/iris/items", items(*[f"u{i}" for i in range(12)])).status_code == 202
        _wait(lambda: all(dev.call("GET", f"/queues/iris/results/u{i}").status_code == 200 for i in range(12)))
    finally:
        consumer.stop()
    assert sum(len(q) for _, _, q in fake_predict.calls) == 12
    assert max(len(q) for _, _, q in fake_predict.calls) > 1  # batched, not one call per item


def test_the_local_consumer_keeps_messages_whose_results_were_not_written(dev, queues, fake_predict, sqs, queue_url,
                                                                          monkeypatch):
    from chalicelib.local.serving_consumer import ServingQueueConsumer

    def broken(results):
        raise ConnectionError("DynamoDB is away")

    monkeypatch.setattr(queues._results, "put_many", broken)
    consumer = ServingQueueConsumer(queue_url, sqs, queues.process, wait_seconds=0)
    consumer.start()
    try:
        dev.call("POST", "/queues/iris/items", items("a", "b"))
        _wait(lambda: fake_predict.calls)
        time.sleep(0.2)
    finally:
        consumer.stop()
    # received, not deleted: in flight until the visibility timeout, then delivered again
    assert waiting(sqs, queue_url, "ApproximateNumberOfMessagesNotVisible") == 2
