"""Managed images through the API (seed 002; issue 11), the builder a fake of its port: the
builders themselves are under tests/contract/test_image_builders.py."""
from __future__ import annotations

import pytest
from api_support import assert_error

from unit.services.fakes_images import FakeImageBuilder
from unit.services.fakes import FakeWorkflowRunner


@pytest.fixture
def builder() -> FakeImageBuilder:
    return FakeImageBuilder()


@pytest.fixture
def image_workflows() -> FakeWorkflowRunner:
    return FakeWorkflowRunner()


@pytest.fixture
def service_overrides(builder, image_workflows):
    # tests/workflows/test_managed_image.py runs the real workflow.
    return {"image_builder": builder, "image_workflows": image_workflows}


def create(api, name, requirements=(), **extra):
    return api.call("POST", "/managed-images", {"name": name, "requirements": list(requirements), **extra})


def test_create_then_ready_with_what_the_build_resolved(make_user, builder, image_workflows):
    dev = make_user("APP_DEVELOPER")
    made = create(dev, "xgb", [{"name": "XGBoost", "version_specifier": "==1.0.2"}, {"name": "tensorflow"}])
    assert made.status_code == 201, made.data
    assert made.data["status"] == "PENDING" and made.data["base"] == "worker"
    assert made.data["requirements"] == [{"name": "tensorflow", "version_specifier": None},
                                         {"name": "xgboost", "version_specifier": "==1.0.2"}]
    assert [r.pip_argument() for r in builder.started[0][1]] == ["tensorflow", "xgboost==1.0.2"]
    # the workflow's own bound on its polls: the build deadline's worth of polls, and 10 more
    from chalicelib.services.managed_images import BUILD_DEADLINE_SECONDS
    assert [payload for _, payload in image_workflows.starts] == [
        {"name": "xgb", "poll_seconds": 20, "polls": 0, "max_polls": BUILD_DEADLINE_SECONDS // 20 + 10}]

    builder.finish(builder.last(), ["xgboost==1.0.2", "tensorflow==2.1.0", "numpy==1.26.4"])
    image = dev.call("GET", "/managed-images/xgb").data
    assert image["status"] == "READY" and image["image_ref"] == "repo:build-1"
    assert {"name": "xgboost", "version": "1.0.2"} in image["pip_libraries"]


def test_names_are_unique(make_user, builder):
    alice, bob = make_user("MODEL_DEVELOPER"), make_user("APP_DEVELOPER")
    assert create(alice, "same").status_code == 201
    assert_error(create(bob, "same"), 409, "conflict", "'same'")
    assert len(builder.started) == 1  # the duplicate started no build


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "requirements": [{"name": "--index-url=http://evil"}]}, "name"),
    ({"name": "x", "requirements": [{"name": "six", "version_specifier": "latest"}]}, "version_specifier"),
    ({"name": "x", "requirements": [{"name": "six", "version_specifier": "==1"}, {"name": "Six"}]}, "six"),
    ({"name": "bad name", "requirements": []}, "name"),
    ({"name": "x", "base": "gpu"}, "base"),
    ({"requirements": []}, "name"),
])
def test_bad_input_is_400_naming_the_field(make_user, builder, body, field):
    dev = make_user("MODEL_DEVELOPER")
    assert_error(dev.call("POST", "/managed-images", body), 400, "invalid_input", field)
    assert builder.started == []


def test_a_failed_build_says_why_and_its_log_is_one_call_away(make_user, builder):
    dev = make_user("MODEL_DEVELOPER")
    create(dev, "broken", [{"name": "nope"}])
    builder.fail(builder.last(), "ERROR: No matching distribution found for nope\n")
    image = dev.call("GET", "/managed-images/broken").data
    assert image["status"] == "FAILED" and image["error"] == "pip install failed"
    logs = dev.call("GET", "/managed-images/broken/logs").data
    assert "No matching distribution found for nope" in logs["log"]


def test_list_filters_on_installed_versions_intersected_and_pages_stably(make_user, builder):
    dev = make_user("APP_DEVELOPER")
    freezes = {"a1": ["catboost==1.0.3", "tensorflow==2.1"], "a2": ["catboost==1.0.4", "tensorflow==2.1"],
               "a3": ["catboost==1.0.3"], "a4": ["tensorflow==2.1"], "a5": ["catboost==1.0.3", "tensorflow==2.2"]}
    for name, freeze in freezes.items():
        create(dev, name, [{"name": "catboost"}])
        builder.finish(builder.last(), freeze)
    create(dev, "a6", [{"name": "catboost"}])  # still PENDING: matches nothing yet

    def names(query):
        response = dev.call("GET", f"/managed-images?{query}")
        assert response.status_code == 200, response.data
        return [i["name"] for i in response.data["images"]], response.data["next_page_token"]

    assert names("pip_library=catboost==1.0.3&pip_library=tensorflow") == (["a1", "a5"], "")
    assert names("pip_library=CatBoost==1.0.3.0") == (["a1", "a3", "a5"], "")  # names and versions normalised
    assert names("pip_library=tensorflow==2.1&page_size=1")[0] == ["a1"]

    seen, token = [], ""
    while True:
        page, token = names(f"page_size=2&page_token={token}")
        seen += page
        if not token:
            break
    assert seen == ["a1", "a2", "a3", "a4", "a5", "a6"]
    assert_error(dev.call("GET", "/managed-images?page_size=101"), 400, "invalid_input", "page_size")
    assert_error(dev.call("GET", "/managed-images?page_token=%25%25"), 400, "invalid_input", "page_token")


def test_delete_is_refused_while_a_job_uses_the_image_and_only_its_owner_or_an_admin_deletes(
        make_user, superadmin, builder):
    from chalicelib import wiring

    alice, bob = make_user("MODEL_DEVELOPER"), make_user("MODEL_DEVELOPER")
    create(alice, "img")
    images = wiring.services().managed_images
    with pytest.raises(Exception, match="usable once READY"):
        images.use("img", "job-1")
    builder.finish(builder.last(), ["six==1.16.0"])
    images.use("img", "job-1")
    assert alice.call("GET", "/managed-images/img").data["in_use_by"] == ["job-1"]

    assert_error(bob.call("DELETE", "/managed-images/img"), 403, "forbidden")
    assert_error(alice.call("DELETE", "/managed-images/img"), 409, "conflict", "job-1")
    images.release("img", "job-1")
    assert alice.call("DELETE", "/managed-images/img").status_code == 200
    assert_error(alice.call("GET", "/managed-images/img"), 404, "not_found")
    assert create(bob, "img").status_code == 201  # the name is free again
    assert superadmin.call("DELETE", "/managed-images/img").status_code == 200


def test_unknown_and_anonymous(client, make_user):
    dev = make_user("APP_DEVELOPER")
    assert_error(dev.call("GET", "/managed-images/nope"), 404, "not_found", "nope")
    assert_error(dev.call("DELETE", "/managed-images/nope"), 404, "not_found")
    assert_error(client.call("GET", "/managed-images"), 401, "unauthenticated")
