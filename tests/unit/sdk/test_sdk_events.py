"""``Client.list_events``/``follow_events`` and ``kilele events list [--follow]`` against the fake API."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from click.testing import CliRunner

from kilele import Client
from kilele.cli import cli


def event(n: int, status: str = "RUNNING") -> dict:
    return {"event_id": f"e{n}", "source": "kilele", "detail-type": "Kilele Train Job State Change",
            "detail": {"id": "job-1", "kind": "train_job", "status": status, "owner_id": "u1"}}


@pytest.fixture
def run(tmp_path, monkeypatch, server):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("KILELE_URL", "KILELE_API_KEY", "KILELE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, ["--url", server.url, "--api-key", "k", *args], catch_exceptions=False)


def test_list_events_sends_only_the_filters_given(server):
    server.route("GET", "/events", 200, {"events": [event(1)], "next_page_token": "1.e1"})
    page = Client(base_url=server.url, api_key="k").list_events(kind="train_job", since=datetime(2026, 12, 1),
                                                                limit=5, page_token="0.0")
    assert page == {"events": [event(1)], "next_page_token": "1.e1"}
    assert server.last("GET").query == {"kind": ["train_job"], "since": ["2026-12-01T00:00:00"], "limit": ["5"],
                                        "page_token": ["0.0"]}


def test_follow_events_pages_on_then_waits_for_new_ones(server):
    pages = iter([{"events": [event(1), event(2)], "next_page_token": "2.e2"},
                  {"events": [], "next_page_token": "2.e2"},
                  {"events": [event(3, "COMPLETED")], "next_page_token": "3.e3"},
                  {"events": [], "next_page_token": "3.e3"}])
    server.handler("GET", "/events", lambda r: server.Canned(200, next(pages)))
    polls = iter([False, True])
    followed = list(Client(base_url=server.url, api_key="k").follow_events(
        poll_rate_sec=0.01, stop=lambda: next(polls), kind="train_job"))
    assert [e["event_id"] for e in followed] == ["e1", "e2", "e3"]
    tokens = [r.query.get("page_token") for r in server.requests if r.path == "/events"]
    assert tokens == [None, ["2.e2"], ["2.e2"], ["3.e3"]]


def test_cli_events_list_prints_the_page(server, run):
    server.route("GET", "/events", 200, {"events": [event(1)], "next_page_token": "1.e1"})
    result = run("events", "list", "--kind", "train_job", "--status", "ERRORED", "--limit", "10")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"events": [event(1)], "next_page_token": "1.e1"}
    assert server.last("GET").query == {"kind": ["train_job"], "status": ["ERRORED"], "limit": ["10"]}


def test_cli_events_list_follow_prints_one_line_per_event_until_ctrl_c(server, run, monkeypatch):
    calls = {"n": 0}

    def once_then_empty(recorded):
        calls["n"] += 1
        return server.Canned(200, {"events": [event(1), event(2)] if calls["n"] == 1 else [],
                                   "next_page_token": "2.e2"})

    def ctrl_c(seconds: float) -> None:  # the wait between polls is where a follower is interrupted
        raise KeyboardInterrupt

    server.handler("GET", "/events", once_then_empty)
    monkeypatch.setattr("kilele.resources.events.time.sleep", ctrl_c)
    result = run("events", "list", "--follow", "--poll", "0.1")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["event_id"] for line in result.stdout.splitlines()] == ["e1", "e2"]
    assert calls["n"] == 2


def test_cli_refuses_an_unknown_kind(run):
    result = run("events", "list", "--kind", "spaceship")
    assert result.exit_code == 2 and "spaceship" in result.stderr


def test_advance_scheduler_clock_posts_the_seconds(server):
    server.route("POST", "/local/scheduler/advance", 200, {"now": "2026-12-02T11:00:00+00:00", "fired": []})
    answer = Client(base_url=server.url, api_key="k").advance_scheduler_clock(3600)
    assert answer["fired"] == [] and server.last("POST").json() == {"seconds": 3600}
