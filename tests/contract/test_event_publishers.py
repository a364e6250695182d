"""The event-publisher contract: one suite run against both twins of :class:`chalicelib.ports.EventPublisher`.

- **eventbridge**: :class:`EventBridgePublisher` against moto's EventBridge, SQS and CloudWatch
  Logs. The stack's bus has a rule (``source: kilele``) with two targets, as infra deploys it:
  an SQS queue -- what a user's own rule would do, so the test sees each event arrive as
  EventBridge delivers it -- and the log group ``list_events`` reads.
- **local**: :class:`LocalEventLog`, the local stack's append-only log in its data directory.

The contract: a published event arrives with every field as given and the publisher's event id;
events are listed oldest first, filtered, in pages whose tokens continue exactly where the last
page ended, and a follower asking again with its last token gets only what came since; a token
the twin did not give is InvalidInput; a bus or log that cannot take an event is Unavailable; a
new publisher on the same bus or directory lists what an earlier one published.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.events.eventbridge import EventBridgePublisher
from chalicelib.adapters.events.local import LOG_FILE, LocalEventLog
from chalicelib.entities.events import EventFilters, EventKind, KileleEvent
from chalicelib.errors import InvalidInput, Unavailable
from chalicelib.ports_events import EVENT_PAGE_TOKEN_PATTERN

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
REGION = "us-east-1"
BUS = "kilele-test-events"
LOG_GROUP = "/kilele/test/events"


def state_change(n: int, kind: EventKind = EventKind.TRAIN_JOB, owner: str = "u1", status: str = "RUNNING",
                 **extra: Any) -> KileleEvent:
    return KileleEvent.state_change(kind, f"job-{n}", status, owner, T0 + timedelta(seconds=n),
                                    previous_status="STARTED", reason=None, app="iris",
                                    links={"job": f"/train_jobs/job-{n}"}, **extra)


class EventBridgeTwin:
    name = "eventbridge"

    def __init__(self) -> None:
        self.events = boto3.client("events", region_name=REGION)
        self.logs = boto3.client("logs", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        self.sqs = sqs
        self.events.create_event_bus(Name=BUS)
        self.logs.create_log_group(logGroupName=LOG_GROUP)
        self.queue_url = sqs.create_queue(QueueName="user-notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name="kilele-events", EventBusName=BUS, EventPattern=json.dumps({"source": ["kilele"]}))
        group_arn = f"arn:aws:logs:{REGION}:123456789012:log-group:{LOG_GROUP}"
        self.events.put_targets(Rule="kilele-events", EventBusName=BUS, Targets=[
            {"Id": "queue", "Arn": queue_arn}, {"Id": "log", "Arn": group_arn}])

    def publisher(self) -> EventBridgePublisher:
        return EventBridgePublisher(BUS, self.events, self.logs, LOG_GROUP)

    def broken(self) -> EventBridgePublisher:
        return EventBridgePublisher("no-such-bus", self.events, self.logs, LOG_GROUP)

    def delivered(self) -> list[dict[str, Any]]:
        """What a user's rule to an SQS queue received, as EventBridge delivered it."""
        out = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


class LocalTwin:
    name = "local"

    def __init__(self, directory: Path):
        self.directory = directory

    def publisher(self) -> LocalEventLog:
        return LocalEventLog(self.directory)

    def broken(self) -> LocalEventLog:
        log = LocalEventLog(self.directory / "broken")
        (self.directory / "broken" / LOG_FILE).mkdir()  # nothing can be appended to a directory
        return log

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.directory / LOG_FILE).read_text().splitlines()]


@pytest.fixture(params=["eventbridge", "local"])
def twin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "local":
        yield LocalTwin(tmp_path)
        return
    with mock_aws():
        yield EventBridgeTwin()


def everything(publisher: Any, filters: EventFilters = EventFilters(), limit: int = 2) -> list[KileleEvent]:
    out: list[KileleEvent] = []
    token = None
    while True:
        page, next_token = publisher.list_events(filters, token, limit)
        out.extend(page)
        if not page:
            assert next_token == token  # an empty page leaves the position where it was
            return out
        token = next_token


def test_a_published_event_arrives_with_every_field(twin: Any) -> None:
    publisher = twin.publisher()
    event = state_change(1, kind=EventKind.STRESS_TEST, status="FAILING", project_id="p1",
                         data={"progress": "3/4"}).model_copy()
    event_id = publisher.publish(event)
    assert event_id
    [arrived] = twin.delivered()
    assert arrived["source"] == "kilele"
    assert arrived["detail-type"] == "Kilele Stress Test State Change"
    assert arrived["detail"] == event.detail_json()
    assert arrived["detail"]["time"] == "2026-12-01T12:00:01Z"
    [listed] = publisher.list_events(EventFilters())[0]
    assert listed.event_id == event_id
    assert listed.detail == event.detail


def test_events_are_listed_oldest_first_in_pages_that_continue_exactly(twin: Any) -> None:
    publisher = twin.publisher()
    ids = [publisher.publish(state_change(n)) for n in range(5)]
    listed = everything(publisher, limit=2)
    assert [e.event_id for e in listed] == ids
    assert [e.detail.id for e in listed] == [f"job-{n}" for n in range(5)]


def test_a_follower_gets_only_what_came_since_its_last_token(twin: Any) -> None:
    publisher = twin.publisher()
    publisher.publish(state_change(0))
    page, token = publisher.list_events(EventFilters(), None, 100)
    assert len(page) == 1 and token
    assert publisher.list_events(EventFilters(), token, 100) == ([], token)
    publisher.publish(state_change(1, status="COMPLETED"))
    page, _ = publisher.list_events(EventFilters(), token, 100)
    assert [(e.detail.id, e.detail.status) for e in page] == [("job-1", "COMPLETED")]


def test_filters_keep_only_matching_events(twin: Any) -> None:
    publisher = twin.publisher()
    publisher.publish(state_change(0, owner="u1"))
    publisher.publish(state_change(1, owner="u2"))
    publisher.publish(state_change(2, kind=EventKind.IMAGE_BUILD, owner="u1", status="READY"))
    publisher.publish(state_change(3, owner="u1", status="ERRORED"))
    assert [e.detail.id for e in everything(publisher, EventFilters(owner_id="u1"))] == ["job-0", "job-2", "job-3"]
    assert [e.detail.id for e in everything(publisher, EventFilters(kind=EventKind.IMAGE_BUILD))] == ["job-2"]
    assert [e.detail.id for e in everything(publisher, EventFilters(owner_id="u1", status="ERRORED"))] == ["job-3"]
    assert [e.detail.id for e in everything(publisher, EventFilters(id="job-1"))] == ["job-1"]
    assert [e.detail.id for e in everything(publisher, EventFilters(since=T0 + timedelta(seconds=2)))] == ["job-2", "job-3"]
    naive = (T0 + timedelta(seconds=2)).replace(tzinfo=None)  # a time without a zone is UTC
    assert [e.detail.id for e in everything(publisher, EventFilters(since=naive))] == ["job-2", "job-3"]
    # A page is filled with matching events: the non-matching ones between do not shorten it.
    page, _ = publisher.list_events(EventFilters(owner_id="u1"), None, 2)
    assert [e.detail.id for e in page] == ["job-0", "job-2"]


@pytest.mark.parametrize("token", ["", "x", "12", "12.", "../etc", "1" * 21 + ".a", "1.a\n", "1.a/b"])
def test_a_token_not_of_the_documented_form_is_invalid_input(twin: Any, token: str) -> None:
    with pytest.raises(InvalidInput):
        twin.publisher().list_events(EventFilters(), token, 10)


@pytest.mark.parametrize("token", ["0.0", "99999999999999999999.zzz"])
def test_every_token_of_the_documented_form_is_a_position(twin: Any, token: str) -> None:
    publisher = twin.publisher()
    publisher.publish(state_change(0))
    page, next_token = publisher.list_events(EventFilters(), token, 10)
    assert re.fullmatch(EVENT_PAGE_TOKEN_PATTERN, next_token)
    assert len(page) == (1 if token == "0.0" else 0)


def test_a_bus_or_log_that_cannot_take_the_event_is_unavailable(twin: Any) -> None:
    with pytest.raises(Unavailable):
        twin.broken().publish(state_change(0))


def test_a_new_publisher_lists_what_an_earlier_one_published(twin: Any) -> None:
    first = twin.publisher()
    ids = [first.publish(state_change(n)) for n in range(3)]
    assert [e.event_id for e in everything(twin.publisher())] == ids


def test_the_schema_refuses_a_wrong_detail_type_or_source() -> None:
    event = state_change(0)
    with pytest.raises(ValueError):
        KileleEvent(detail_type="Kilele Stress Test State Change", detail=event.detail)
    with pytest.raises(ValueError):
        KileleEvent(source="aws.batch", detail_type=event.detail_type, detail=event.detail)


def test_the_local_log_drops_a_line_a_crash_cut_short(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path)
    kept = log.publish(state_change(0))
    with open(tmp_path / LOG_FILE, "ab") as f:
        f.write(b'{"event_id": "torn", "sour')
    reopened = LocalEventLog(tmp_path)
    after = reopened.publish(state_change(1))
    assert [e.event_id for e in everything(reopened)] == [kept, after]
