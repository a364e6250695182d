"""End-to-end (issue 12): on the real local stack, a managed image's build publishes its state
changes to the stack's event log, read through the SDK and the CLI; another user sees none of
them; the stack's scheduler runs (GET / reports it). Uses the session's stack: no stack of its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

KILELE = Path(sys.executable).parent / "kilele"


@pytest.mark.localstack  # docs/localstack.md: the e2e subset run against LocalStack
def test_an_image_builds_state_changes_are_events_read_by_the_sdk_and_cli(stack, make_user, tmp_path):
    developer, other = make_user("APP_DEVELOPER"), make_user("APP_DEVELOPER")
    name = f"events-{uuid.uuid4().hex[:8]}"
    builder = developer.create_managed_image(name, [])
    assert builder.get_status(wait_until_finish=True, poll_rate_sec=0.5)["status"] == "READY"

    events = developer.list_events(kind="image_build", id=name)["events"]
    assert [(e["detail"]["previous_status"], e["detail"]["status"]) for e in events] == [
        (None, "PENDING"), ("PENDING", "BUILDING"), ("BUILDING", "READY")]
    assert {e["detail-type"] for e in events} == {"Kilele Image Build State Change"}
    assert other.list_events(id=name)["events"] == []

    environment = {**{k: v for k, v in os.environ.items() if not k.startswith("KILELE_")},
                   "HOME": str(tmp_path), "KILELE_URL": stack.url}
    key = developer.create_api_key("events-e2e")["key"]
    listed = subprocess.run([str(KILELE), "--api-key", key, "events", "list", "--id", name],
                            capture_output=True, text=True, env=environment, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert [e["event_id"] for e in json.loads(listed.stdout)["events"]] == [e["event_id"] for e in events]

    health = requests.get(stack.url + "/", timeout=10).json()["components"]["scheduler"]
    assert health["ok"], health
    developer.delete_managed_image(name)
