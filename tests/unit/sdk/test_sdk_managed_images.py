"""Managed images through the SDK (seed 002's calls as written) against the fake API."""
from __future__ import annotations

import pytest

from kilele import Client
from kilele.errors import ConflictError
from kilele.rime import RIMEClient, RIMEImageBuilder


def image(status: str = "PENDING", **extra) -> dict:
    body = {"name": "xgboost102_tensorflow", "status": status, "error": None, "image_ref": None,
            "requirements": [], "package_requirements": [], "pip_libraries": []}
    body.update(extra)
    return body


@pytest.fixture
def client(server):
    made = Client(base_url=server.url)
    made.token = "t"
    return made


def test_create_managed_image_sends_the_requirements_and_waits_until_ready(server, client, capsys):
    server.route("POST", "/managed-images", 201, image())
    answers = iter([image("PENDING"), image("BUILDING"),
                    image("READY", image_ref="venv:///x", package_requirements=["xgboost==1.0.2"])])
    server.handler("GET", "/managed-images/xgboost102_tensorflow", lambda r: server.Canned(200, next(answers)))
    requirements = [client.pip_requirement("xgboost", "==1.0.2"), client.pip_requirement("tensorflow")]
    builder = client.create_managed_image("xgboost102_tensorflow", requirements)
    assert isinstance(builder, RIMEImageBuilder)
    assert server.last("POST").json() == {"name": "xgboost102_tensorflow", "base": "worker", "requirements": [
        {"name": "xgboost", "version_specifier": "==1.0.2"}, {"name": "tensorflow", "version_specifier": None}]}

    status = builder.get_status(verbose=True, wait_until_finish=True, poll_rate_sec=0)
    assert status == {"name": "xgboost102_tensorflow", "status": "READY", "error": None, "image_ref": "venv:///x"}
    out = capsys.readouterr().out
    assert "status PENDING" in out and "status BUILDING" in out and "xgboost==1.0.2" in out


def test_verbose_prints_the_build_log_on_failure(server, client, capsys):
    server.route("GET", "/managed-images/bad", 200, image("FAILED", name="bad", error="pip install failed"))
    server.route("GET", "/managed-images/bad/logs", 200, {"name": "bad", "log": "ERROR: No matching distribution\n"})
    status = client.get_image_builder("bad").get_status(verbose=True)
    assert status["status"] == "FAILED"
    out = capsys.readouterr().out
    assert "pip install failed" in out and "ERROR: No matching distribution" in out


def test_list_managed_images_sends_filters_and_pages(server, client):
    server.route("GET", "/managed-images", 200, {"images": [image("READY")], "next_page_token": "YQ"})
    filters = [client.pip_library_filter("catboost", "1.0.3"), client.pip_library_filter("tensorflow")]
    images, token = client.list_managed_images(pip_library_filters=filters, page_token="eA", page_size=10)
    assert [i["name"] for i in images] == ["xgboost102_tensorflow"] and token == "YQ"
    assert server.last("GET").query == {"pip_library": ["catboost==1.0.3", "tensorflow"], "page_size": ["10"],
                                        "page_token": ["eA"]}
    client.list_managed_images()
    assert server.last("GET").query == {"page_size": ["100"]}


def test_a_taken_name_and_a_delete_in_use_raise_conflict(server, client):
    server.route("POST", "/managed-images", 409, {"error": {"code": "conflict", "message": "taken"}})
    with pytest.raises(ConflictError):
        client.create_managed_image("x", [])
    server.route("DELETE", "/managed-images/x", 200, {"name": "x", "deleted": True})
    assert client.delete_managed_image("x") == {"name": "x", "deleted": True}


def test_rime_client_has_the_managed_image_calls():
    for name in ("create_managed_image", "list_managed_images", "pip_requirement", "pip_library_filter"):
        assert callable(getattr(RIMEClient, name))
