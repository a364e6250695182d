"""``Client.build_platform_images`` / ``get_platform_images`` and ``kilele images build|status``
(issue 13) against the fake API."""
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


def image(name: str, status: str, **extra) -> dict:
    return {"name": name, "tag": "t" * 32, "image_uri": f"r/{name}:{'t' * 32}", "status": status, "build_id": None,
            "log_url": None, "reason": None, "started": False, **extra}


def test_build_waits_until_each_image_is_final_and_exits_1_if_one_failed(server, run):
    server.route("POST", "/platform-images/builds", 202, {"images": [
        image("worker", "PENDING", started=True, build_id="b1"), image("inference", "READY")]})
    answers = iter([{"images": [image("worker", "BUILDING"), image("worker-gpu", "MISSING"),
                                image("inference", "READY")]}])
    last = {"images": [image("worker", "FAILED", reason="the build ended FAILED", log_url="https://logs/b1"),
                       image("worker-gpu", "MISSING"), image("inference", "READY")]}
    server.handler("GET", "/platform-images", lambda r: server.Canned(200, next(answers, last)))

    result = run("images", "build", "--image", "worker", "--image", "inference", "--wait", "--poll-seconds", "0.5")

    assert result.exit_code == 1
    assert server.last("POST").json() == {"images": ["worker", "inference"]}
    shown = json.loads(result.stdout)["images"]
    assert [(i["name"], i["status"]) for i in shown] == [("worker", "FAILED"), ("inference", "READY")]
    assert "images: worker BUILDING, inference READY" in result.stderr


def test_build_without_names_asks_for_all_and_status_reads_them(server, run):
    server.route("POST", "/platform-images/builds", 202, {"images": [image("worker", "READY")]})
    server.route("GET", "/platform-images", 200, {"images": [image("worker", "READY")]})

    assert run("images", "build").exit_code == 0
    assert server.last("POST").json() == {}
    status = run("images", "status")
    assert status.exit_code == 0 and json.loads(status.stdout)["images"][0]["status"] == "READY"


def test_the_local_stacks_refusal_is_an_error_line(server, run):
    server.route("POST", "/platform-images/builds", 422, {"error": {
        "code": "unprocessable", "message": "the local stack runs no container images: ..."}})
    result = run("images", "build")
    assert result.exit_code == 1 and "the local stack runs no container images" in result.stderr
