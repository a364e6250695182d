"""The SDK and CLI side of logins: the audit log (get_audit_events, ``kilele users audit-events``)
and throttled logins (429 -> TooManyRequestsError with retry_after)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kilele import Client
from kilele.cli import cli
from kilele.errors import TooManyRequestsError

PAGE = {"events": [{"id": "e-1", "datetime": "2026-12-01T09:00:00+00:00", "event": "login.failed",
                    "outcome": "failure", "email": "dev@x", "source_ip": "192.0.2.1",
                    "details": {"reason": "wrong email or password"}}],
        "next_page_token": "tok-2"}


def test_get_audit_events_pages(server):
    server.route("GET", "/audit-events", 200, PAGE)
    client = Client(base_url=server.url, token="tok-9")
    assert client.get_audit_events() == PAGE
    assert server.last("GET", "/audit-events").query == {"limit": ["50"]}
    client.get_audit_events(limit=10, page_token="tok-2")
    assert server.last("GET", "/audit-events").query == {"limit": ["10"], "page_token": ["tok-2"]}


def test_a_throttled_login_raises_too_many_requests_with_retry_after(server):
    error = {"error": {"code": "too_many_requests", "message": "too many failed logins for this account: wait 4 s"}}
    server.route("POST", "/tokens", 429, error, headers={"Retry-After": "4"})
    client = Client(base_url=server.url)
    with pytest.raises(TooManyRequestsError) as caught:
        client.login("dev@x", "guess")
    assert caught.value.retry_after == 4.0 and caught.value.status_code == 429
    assert str(caught.value) == "429 too_many_requests: too many failed logins for this account: wait 4 s"
    assert client.token is None


def test_cli_users_audit_events(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KILELE_API_KEY", "kk_a.b")
    server.route("GET", "/audit-events", 200, PAGE)
    result = CliRunner().invoke(cli, ["--url", server.url, "users", "audit-events", "--limit", "5",
                                      "--page-token", "tok-1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == PAGE
    assert server.last("GET", "/audit-events").query == {"limit": ["5"], "page_token": ["tok-1"]}
    assert server.last().headers["x-api-key"] == "kk_a.b"
