"""The serving-queue consumer contract: one suite run against both consumers of the queue API's SQS
queue (Cluster Serving's pub/sub inference).

- **lambda**: the ``serve_queue_items`` Chalice handler (app.py), invoked through
  ``chalice.test.Client``'s ``lambda_.invoke`` with SQS events the client generates from the
  messages received from moto's SQS, the way Lambda's event source mapping does it (up to 10
  messages per event, as app.py declares; deleted when the handler returns, left in flight when it
  raises).
- **local**: the local stack's :class:`ServingQueueConsumer` (the one receive loop,
  chalicelib/local/queue_consumer.py) on the same moto queue.

Both run the services the composition root builds (``wiring.build`` + ``install``) against
moto's DynamoDB and SQS, with one part replaced: the endpoints are tests/fake_endpoints.py's
``FakeEndpoints`` (which meets the endpoint-runner contract suite), so the predict path — the
app's running inference job looked up in DynamoDB, the endpoint invoked, results written — is
the real one, minus a model server.

The contract: enqueued items get their results; a batch whose results cannot be written is not
acknowledged (the Lambda raises, so SQS delivers it again; the local consumer leaves it in
flight); the items of one received batch are predicted together, one call per queue; a malformed
message is dropped, not delivered forever.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional

import pytest
from moto import mock_aws

from chalicelib import wiring
from chalicelib.entities import OK, InferenceJob, InferenceJobStatus, ServingResult, Task, User, UserType, queue_key
from chalicelib.local.provision import provision
from chalicelib.local.serving_consumer import ServingQueueConsumer
from chalicelib.resources import SERVING_REQUESTS_QUEUE
from chalicelib.store.queues import ServingResultRepository
from chalicelib.store.serving import InferenceJobRepository

from fake_endpoints import FakeEndpoints
from settings_support import make_settings

WAIT_SECONDS = 15.0
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
USER = User(id="user-1", email="dev@example.com", user_type=UserType.APP_DEVELOPER, password_hash="-", created_at=NOW)
APPS = ("iris", "wine")


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.05)
    return value


class BrokenResults(ServingResultRepository):
    """The real results table, except that writing fails (DynamoDB is unreachable)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def put_many(self, results: Any) -> None:
        self.attempts += 1
        raise ConnectionError("DynamoDB could not be reached")


class Stack:
    """moto with the platform's resources, and the services built over it and installed."""

    def __init__(self) -> None:
        self.settings = make_settings()
        self.queue_url = provision(self.settings).queue_urls[SERVING_REQUESTS_QUEUE.name]
        self.endpoints = FakeEndpoints()
        self.jobs = InferenceJobRepository()
        self.results = ServingResultRepository()
        self.services: Optional[wiring.Services] = None
        self._previous: Any = None

    def install(self, **overrides: Any) -> wiring.Services:
        """Build the services (the fake endpoints and these parts replaced) and install them."""
        parts = {"endpoints": self.endpoints, "inference_jobs": self.jobs, "serving_results": self.results,
                 **overrides}
        self.services = wiring.build(self.settings, **parts)
        self._previous = wiring.install(self.services)
        for app in APPS:  # each app has a running inference job on a (fake) endpoint
            endpoint = f"kilele-test-{app}"
            self.endpoints.deploy(endpoint, f"bundles/{app}/bundle.tar.gz")
            self.jobs.add(InferenceJob(
                id=f"ij-{app}", user_id=USER.id, app=app, app_version=1, train_job_id=f"job-{app}",
                task=Task.TABULAR_CLASSIFICATION, endpoint_name=endpoint, bundle_key=f"bundles/{app}/bundle.tar.gz",
                members=[], created_at=NOW, status=InferenceJobStatus.RUNNING))
        return self.services

    def close(self) -> None:
        if self.services is not None:
            self.services.close()
            wiring.install(self._previous)

    @property
    def sqs(self) -> Any:
        return self.services.aws.client("sqs")

    def enqueue(self, app: str, uris: list[str]) -> None:
        """Through the queue API's service, as ``POST /queues/{app}/items`` does."""
        items = [(uri, [float(i), 1.0, 2.0, 3.0]) for i, uri in enumerate(uris)]
        assert self.services.queues.enqueue(USER, app, items) == {"enqueued": len(uris)}

    def result(self, app: str, uri: str) -> Optional[ServingResult]:
        return self.results.get(queue_key(USER.id, app), uri)

    def counts(self) -> tuple[int, int]:
        """(messages waiting, messages in flight) in the serving queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


class LambdaConsumer:
    """``serve_queue_items`` fed as Lambda's SQS event source mapping feeds it."""

    kind = "lambda"

    def __init__(self, stack: Stack):
        from chalice.test import Client

        from app import app

        self.stack = stack
        self._client = Client(app)
        self.payloads: list[Any] = []
        self.errors: list[Exception] = []

    def deliver(self) -> bool:
        """One receive (up to 10 messages) and one invocation; False if the queue had nothing."""
        sqs, url = self.stack.sqs, self.stack.queue_url
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return False
        event = self._client.events.generate_sqs_event(
            [m["Body"] for m in messages], queue_name=self.stack.settings.resource_name(SERVING_REQUESTS_QUEUE.name))
        try:
            self.payloads.append(self._client.lambda_.invoke("serve_queue_items", event).payload)
        except Exception as e:  # noqa: BLE001 - the invocation failed: the mapping deletes nothing
            self.errors.append(e)
            return True
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return True

    def run_until(self, condition: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            if not self.deliver():
                time.sleep(0.05)

    def close(self) -> None:
        pass


class LocalConsumer:
    """The local stack's consumer thread, calling the installed services' queue service."""

    kind = "local"

    def __init__(self, stack: Stack):
        self.stack = stack

    def run_until(self, condition: Callable[[], Any], what: str) -> None:
        consumer = ServingQueueConsumer(self.stack.queue_url, self.stack.sqs,
                                        wiring.services().queues.process, wait_seconds=0)
        consumer.start()
        try:
            wait_for(condition, what)
        finally:
            consumer.stop()

    def close(self) -> None:
        pass


@pytest.fixture
def stack() -> Iterator[Stack]:
    with mock_aws():
        made = Stack()
        try:
            yield made
        finally:
            made.close()


@pytest.fixture(params=["lambda", "local"])
def consumer_kind(request) -> str:
    return request.param


@pytest.fixture
def make_consumer(stack, consumer_kind) -> Iterator[Callable[[], Any]]:
    """``make_consumer()`` once the services are installed."""
    made: list[Any] = []

    def make() -> Any:
        consumer = LambdaConsumer(stack) if consumer_kind == "lambda" else LocalConsumer(stack)
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        consumer.close()


def test_enqueued_items_get_their_results(stack, make_consumer):
    stack.install()
    stack.endpoints.answer = lambda queries: [{"sum": sum(q)} for q in queries]
    uris = [f"img-{i}" for i in range(14)]  # more than one receive's worth
    stack.enqueue("iris", uris)
    consumer = make_consumer()

    consumer.run_until(lambda: all(stack.result("iris", uri) for uri in uris), "every item's result")

    for i, uri in enumerate(uris):
        result = stack.result("iris", uri)
        assert result.status == OK and result.decoded_value() == {"sum": float(i) + 6.0} and not result.default
    wait_for(lambda: stack.counts() == (0, 0), "the messages to be deleted")


def test_a_batch_whose_results_cannot_be_written_is_not_acknowledged(stack, make_consumer):
    broken = BrokenResults()
    stack.install(serving_results=broken)
    stack.enqueue("iris", ["a", "b"])
    consumer = make_consumer()

    consumer.run_until(lambda: broken.attempts >= 1, "the consumer to try writing the results")

    # predicted, not written, and not deleted: in flight until the visibility timeout, then again
    assert [len(queries) for _, queries in stack.endpoints.invocations] == [2]
    assert stack.counts() == (0, 2)
    assert stack.result("iris", "a") is None
    if consumer.kind == "lambda":  # the handler raised: that is what makes Lambda's mapping keep them
        assert len(consumer.errors) == 1 and isinstance(consumer.errors[0], ConnectionError)
        assert consumer.payloads == []


def test_the_items_of_one_receive_are_predicted_together(stack, make_consumer):
    stack.install()
    stack.enqueue("iris", [f"i{n}" for n in range(6)])
    stack.enqueue("wine", [f"w{n}" for n in range(4)])
    assert stack.counts() == (10, 0)  # one receive's worth, queued before the consumer starts
    consumer = make_consumer()

    consumer.run_until(lambda: stack.counts() == (0, 0) and stack.result("wine", "w3"), "the batch to be answered")

    # one predict call per queue for the whole received batch, not one per item
    calls = sorted((name, len(queries)) for name, queries in stack.endpoints.invocations)
    assert calls == [("kilele-test-iris", 6), ("kilele-test-wine", 4)]
    if consumer.kind == "lambda":
        assert consumer.payloads == [{"results": 10, "errors": 0, "groups": 2, "malformed": 0}]


def test_a_malformed_message_is_dropped_not_redelivered(stack, make_consumer):
    stack.install()
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody="not json")
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps({"uri": "no-user"}))
    stack.enqueue("iris", ["good"])
    consumer = make_consumer()

    consumer.run_until(lambda: stack.counts() == (0, 0) and stack.result("iris", "good"), "the queue to drain")

    assert stack.result("iris", "good").status == OK
    assert [len(queries) for _, queries in stack.endpoints.invocations] == [1]
