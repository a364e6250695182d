"""Traffic capture in the SDK and CLI against the fake API: set and read an app's capture
percentage, predict with the answers' query ids, send labels (a dict, dicts or pairs; a file or
stdin in the CLI), and what is refused before any request."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kilele import Client
from kilele.cli import cli

CAPTURE = {"app": "iris", "capture_percent": 25.0, "capture_uri": "s3://b/capture/u/iris/",
           "ground_truth_uri": "s3://b/ground-truth/u/iris/"}


@pytest.fixture
def client(server):
    return Client(base_url=server.url, api_key="kk_a.b")


def test_set_and_get_capture(server, client):
    server.route("PATCH", "/apps/iris", 200, {"name": "iris", "capture_percent": 25.0})
    server.route("GET", "/apps/iris/capture", 200, CAPTURE)
    assert client.set_capture("iris", 25)["capture_percent"] == 25.0
    assert server.last("PATCH", "/apps/iris").json() == {"capture_percent": 25.0}
    assert client.get_capture("iris") == CAPTURE


def test_register_with_a_capture_percentage(server, client):
    server.route("POST", "/apps", 201, {"name": "iris"})
    client.register_application("iris", "floats", "x", 1000, capture_percent=100)
    assert server.last("POST", "/apps").json()["capture_percent"] == 100.0


def test_predict_with_ids_returns_the_whole_answer(server, client):
    server.route("POST", "/apps/iris/predict", 200, {"predictions": [1, 2], "query_ids": [11, 12]})
    assert client.predict_with_ids("iris", queries=[[1.0], [2.0]]) == {"predictions": [1, 2], "query_ids": [11, 12]}
    assert server.last("POST", "/apps/iris/predict").json() == {"queries": [[1.0], [2.0]]}
    with pytest.raises(ValueError):
        client.predict_with_ids("iris")


@pytest.mark.parametrize("labels", [
    {11: "a", "12": "b"},
    [{"query_id": 11, "label": "a"}, {"query_id": "12", "label": "b"}],
    [(11, "a"), ("12", "b")],
])
def test_send_labels_in_each_shape(server, client, labels):
    server.route("POST", "/apps/iris/labels", 201, {"app": "iris", "received": 2})
    assert client.send_labels("iris", labels)["received"] == 2
    assert server.last("POST", "/apps/iris/labels").json() == {
        "labels": [{"query_id": 11, "label": "a"}, {"query_id": "12", "label": "b"}]}


def test_cli_capture_and_labels(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    server.route("PATCH", "/apps/iris", 200, {"name": "iris", "capture_percent": 50.0})
    server.route("GET", "/apps/iris/capture", 200, CAPTURE)
    server.route("POST", "/apps/iris/labels", 201, {"app": "iris", "received": 1})
    runner = CliRunner()
    base = ["--url", server.url, "--api-key", "kk_a.b"]
    result = runner.invoke(cli, [*base, "apps", "capture", "iris", "50"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert server.last("PATCH", "/apps/iris").json() == {"capture_percent": 50.0}
    assert json.loads(result.stdout)["capture_uri"] == CAPTURE["capture_uri"]
    assert runner.invoke(cli, [*base, "apps", "capture", "iris", "101"]).exit_code == 2
    result = runner.invoke(cli, [*base, "apps", "labels", "iris", "-"], input='{"11": "a"}', catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert server.last("POST", "/apps/iris/labels").json() == {"labels": [{"query_id": "11", "label": "a"}]}
    bad = runner.invoke(cli, [*base, "apps", "labels", "iris", "-"], input="not json")
    assert bad.exit_code == 2 and "not JSON" in bad.stderr
