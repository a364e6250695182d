"""``kilele managed-images …`` through click's CliRunner against the fake API."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kilele.cli import cli


@pytest.fixture
def run(tmp_path, monkeypatch, server):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("KILELE_URL", "KILELE_API_KEY", "KILELE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, ["--url", server.url, "--api-key", "k", *args], catch_exceptions=False)


def image(status: str, **extra) -> dict:
    return {"name": "img", "status": status, "error": None, "image_ref": None, **extra}


def test_create_with_requirements_waits_and_exits_1_with_the_log_when_the_build_failed(server, run):
    server.route("POST", "/managed-images", 201, image("PENDING"))
    answers = iter([image("BUILDING"), image("FAILED", error="pip install failed")])
    last = image("FAILED", error="pip install failed")
    server.handler("GET", "/managed-images/img", lambda r: server.Canned(200, next(answers, last)))
    server.route("GET", "/managed-images/img/logs", 200, {"log": "ERROR: No matching distribution for nope\n"})
    result = run("managed-images", "create", "img", "-r", "six==1.16.0", "-r", "numpy>=1.26,<2", "-r", "nope",
                 "--wait")
    assert result.exit_code == 1
    assert server.last("POST").json()["requirements"] == [
        {"name": "six", "version_specifier": "==1.16.0"}, {"name": "numpy", "version_specifier": ">=1.26,<2"},
        {"name": "nope", "version_specifier": None}]
    assert json.loads(result.stdout)["status"] == "FAILED"
    assert "No matching distribution" in result.stderr


def test_list_sends_the_filters_and_prints_the_page(server, run):
    server.route("GET", "/managed-images", 200, {"images": [image("READY")], "next_page_token": "YQ"})
    result = run("managed-images", "list", "--pip-library", "six==1.16.0", "--pip-library", "numpy",
                 "--page-size", "5")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"images": [image("READY")], "next_page_token": "YQ"}
    assert server.last("GET").query == {"pip_library": ["six==1.16.0", "numpy"], "page_size": ["5"]}
