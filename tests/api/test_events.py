"""GET /events through the API under moto, with the AWS twin for real: the stack's bus, a rule
delivering Kilele events to the log group the listing reads (as infra deploys them). A stress
test's state changes are published by its record store as they happen; users see their own
events, admins everyone's; bad filters and tokens are 400s."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest
from api_support import assert_error

from chalicelib import resources
from chalicelib.wiring_events import events_log_group
from unit.services.fakes import FakeClock, FakeWorkflowRunner

CSV = b"x1,x2,y\n1,2,0\n3,4,1\n5,6,0\n"
MODEL = b"import numpy as np\n\ndef predict_df(df):\n    return np.full(len(df), 0.5)\n"


@pytest.fixture
def bus(aws, settings) -> None:
    """The bus, the log group and the rule between them: provision() makes them as
    infra/kilele_infra/events.py deploys them."""
    logs = boto3.client("logs", region_name=settings.region)
    assert logs.describe_log_groups(logGroupNamePrefix=events_log_group(settings))["logGroups"]
    assert boto3.client("events", region_name=settings.region).list_rules(
        EventBusName=settings.resource_name(resources.EVENT_BUS))["Rules"]


@pytest.fixture
def service_overrides(bus) -> dict[str, Any]:
    # A clock that moves: events are ordered by their time (ties by event id, see eventbridge.py).
    return {"clock": FakeClock(tick=timedelta(milliseconds=1)), "stress_workflows": FakeWorkflowRunner()}


def upload(api: Any, settings: Any, name: str, data: bytes) -> str:
    uri = api.call("POST", "/stress-tests/uploads", {"filename": name}).data["uri"]
    boto3.client("s3", region_name=settings.region).put_object(
        Bucket=settings.data_bucket, Key=uri.split("/", 3)[3], Body=data)
    return uri


def start_stress_test(api: Any, settings: Any) -> str:
    config = {"run_name": "run 1", "model_info": {"path": upload(api, settings, "model.py", MODEL)},
              "data_info": {"label_col": "y", "ref_path": upload(api, settings, "ref.csv", CSV),
                            "eval_path": upload(api, settings, "eval.csv", CSV)}}
    started = api.call("POST", "/stress-tests", {"test_run_config": config})
    assert started.status_code == 201, started.data
    return started.data["job_id"]


def events_of(api: Any, query: str = "") -> list[dict]:
    answer = api.call("GET", f"/events{query}")
    assert answer.status_code == 200, answer.data
    return answer.data["events"]


def test_a_stress_tests_state_changes_are_listed_oldest_first(make_user, superadmin, settings):
    from chalicelib.wiring import services

    dev = make_user("APP_DEVELOPER")
    job_id = start_stress_test(dev, settings)
    services().stress_tests.start({"job_id": job_id})  # the workflow's first step: RUNNING
    events = events_of(dev, "?kind=stress_test")
    assert [(e["detail"]["previous_status"], e["detail"]["status"]) for e in events] == [
        (None, "PENDING"), ("PENDING", "RUNNING")]
    first = events[0]
    assert first["source"] == "kilele" and first["detail-type"] == "Kilele Stress Test State Change"
    assert first["detail"]["id"] == job_id and first["detail"]["links"] == {"job": f"/stress-tests/{job_id}"}
    assert first["event_id"]
    assert len(events_of(dev, "?since=2000-01-01T00:00:00")) == 2  # a time without a zone is UTC
    assert events_of(dev, "?since=2999-01-01T00:00:00Z") == []

    # Paging: one at a time, then a token that waits for what comes next.
    page = dev.call("GET", "/events?limit=1").data
    assert [e["detail"]["status"] for e in page["events"]] == ["PENDING"]
    rest = dev.call("GET", f"/events?limit=5&page_token={page['next_page_token']}").data
    assert [e["detail"]["status"] for e in rest["events"]] == ["RUNNING"]
    assert dev.call("GET", f"/events?page_token={rest['next_page_token']}").data["events"] == []


def test_users_see_their_own_events_and_admins_everyones(make_user, superadmin, settings):
    alice, bob = make_user("APP_DEVELOPER"), make_user("APP_DEVELOPER")
    start_stress_test(alice, settings)
    assert len(events_of(alice)) == 1
    assert events_of(bob) == []
    alice_id = alice.call("GET", "/users/me").data["id"]
    assert_error(bob.call("GET", f"/events?owner_id={alice_id}"), 403, "forbidden", "other users")
    assert len(events_of(superadmin)) == 1
    assert len(events_of(superadmin, f"?owner_id={alice_id}")) == 1


@pytest.mark.parametrize("query, field", [
    ("?kind=spaceship", "kind"), ("?limit=0", "limit"), ("?limit=1001", "limit"),
    ("?page_token=abc", "page_token"), ("?since=yesterday", "since"), ("?status=a%20b", "status"),
])
def test_bad_filters_are_400s(make_user, query, field):
    answer = make_user("APP_DEVELOPER").call("GET", f"/events{query}")
    assert answer.status_code == 400, answer.data
    assert field in answer.data["error"]["message"]
