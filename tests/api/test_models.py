"""Model uploads: fields, names, visibility, download, deletion and bad files."""
from __future__ import annotations

from typing import Any

import pytest
from api_support import MODEL_SOURCE, assert_error, b64

from chalicelib.store.models import ModelItem


def model_body(name: str = "my-model", source: bytes = MODEL_SOURCE, **fields: Any) -> dict[str, Any]:
    return {"name": name, "task": "TABULAR_CLASSIFICATION", "model_class": "MyModel",
            "model_file_base64": b64(source), **fields}


def create(api, **fields: Any):
    r = api.call("POST", "/models", model_body(**fields))
    assert r.status_code == 201, r.data
    return r.data


@pytest.fixture
def dev(make_user):
    return make_user("MODEL_DEVELOPER")


@pytest.fixture
def other_dev(make_user):
    return make_user("MODEL_DEVELOPER")


@pytest.fixture
def app_dev(make_user):
    return make_user("APP_DEVELOPER")


def names(api, query: str = "") -> list[str]:
    r = api.call("GET", f"/models{query}")
    assert r.status_code == 200, r.data
    return [m["name"] for m in r.data]


# --- creation ---------------------------------------------------------------------------------

def test_upload_answers_the_model(dev, bucket):
    # No dependencies: a set the runtime lacks is built into a managed image (tests/unit/services/
    # test_model_images.py), which this moto stack, with no base image configured, cannot build.
    r = dev.call("POST", "/models", model_body())
    assert r.status_code == 201, r.data
    me = dev.call("GET", "/users/me").data
    assert {"id", "user_id", "name", "task", "model_class", "access_right", "dependencies",
            "docker_image", "train_job_count", "datetime_created"} <= set(r.data)
    assert "object_key" not in r.data and "owner_id" not in r.data
    assert r.data["user_id"] == me["id"]
    assert (r.data["name"], r.data["task"], r.data["model_class"]) == ("my-model", "TABULAR_CLASSIFICATION", "MyModel")
    assert r.data["access_right"] == "PRIVATE" and r.data["train_job_count"] == 0
    assert r.data["dependencies"] == {} and r.data["docker_image"] is None and r.data["image"] is None
    assert dev.call("GET", f"/models/{r.data['id']}").data == r.data
    assert bucket.keys("models/") == [f"models/{r.data['id']}/model.py"]


def test_a_docker_image_the_stack_cannot_run_is_a_422_saying_why(dev, bucket):
    r = dev.call("POST", "/models", model_body(docker_image="img:1"))
    assert_error(r, 422, "unprocessable", "docker_image", "may not pull images from docker.io")
    assert bucket.keys("models/") == []


def test_duplicate_name_for_one_user_conflicts_and_leaves_no_file(dev, bucket):
    first = create(dev)
    r = dev.call("POST", "/models", model_body(source=MODEL_SOURCE + b"# another version\n"))
    assert_error(r, 409, "conflict", "already have a model named 'my-model'")
    assert bucket.keys("models/") == [f"models/{first['id']}/model.py"]
    assert bucket.read(f"models/{first['id']}/model.py") == MODEL_SOURCE
    assert names(dev) == ["my-model"]


def test_same_name_for_another_user_is_fine(dev, other_dev):
    a, b = create(dev), create(other_dev)
    assert a["name"] == b["name"] and a["id"] != b["id"]


def test_app_developer_cannot_create(app_dev, superadmin, bucket):
    assert_error(app_dev.call("POST", "/models", model_body()), 403, "forbidden", "APP_DEVELOPER")
    assert names(superadmin) == [] and bucket.keys() == []


# --- bad input: 4xx and nothing stored ---------------------------------------------------------

BROKEN_SYNTAX = b"from kilele.model import BaseModel\n\nclass MyModel(BaseModel)\n    pass\n"
NOT_A_MODEL = b"class MyModel:\n    pass\n"


@pytest.mark.parametrize("fields, phrases", [
    ({"model_class": "Missing"}, ["class 'Missing' is not defined", "classes found: MyModel"]),
    ({"source": BROKEN_SYNTAX}, ["does not parse", "(line 3)"]),
    ({"source": NOT_A_MODEL}, ["must subclass kilele.model.BaseModel"]),
    ({"source": b"caf\xe9 = 1\n"}, ["not UTF-8"]),
], ids=["missing class", "syntax error", "not a BaseModel", "not UTF-8"])
def test_unusable_model_file(dev, superadmin, bucket, fields, phrases):
    assert_error(dev.call("POST", "/models", model_body(**fields)), 422, "unprocessable", *phrases)
    assert names(superadmin) == [] and bucket.keys() == []


@pytest.mark.parametrize("fields, field", [
    ({"model_class": "1Bad"}, "model_class"),
    ({"model_class": "My-Model"}, "model_class"),
    ({"dependencies": ["numpy"]}, "dependencies"),
    ({"dependencies": {"numpy": 1}}, "dependencies.numpy"),
    ({"access_right": "SHARED"}, "access_right"),
    ({"task": "SPEECH"}, "task"),
    ({"name": " padded "}, "name"),
    ({"model_file_base64": "not base64!"}, "base64"),
], ids=lambda v: str(v))
def test_malformed_request(dev, superadmin, bucket, fields, field):
    assert_error(dev.call("POST", "/models", model_body(**fields)), 400, "invalid_input", field)
    assert names(superadmin) == [] and bucket.keys() == []


def test_file_over_the_limit(dev, superadmin, bucket, override_settings):
    override_settings(max_model_file_bytes=len(MODEL_SOURCE) - 1)
    r = dev.call("POST", "/models", model_body())
    assert_error(r, 413, "payload_too_large", f"{len(MODEL_SOURCE)} bytes", f"limit is {len(MODEL_SOURCE) - 1}")
    assert names(superadmin) == [] and bucket.keys() == []


# --- visibility and download -------------------------------------------------------------------

def test_download_returns_the_file(dev):
    model = create(dev)
    r = dev.call("GET", f"/models/{model['id']}/file")
    assert r.status_code == 200
    assert r.body == MODEL_SOURCE
    assert r.headers["Content-Type"].startswith("text/x-python")
    assert 'filename="my-model.py"' in r.headers["Content-Disposition"]


def test_private_model_of_another_user_is_not_found(dev, other_dev, app_dev):
    model = create(dev)
    for outsider in (other_dev, app_dev):
        assert_error(outsider.call("GET", f"/models/{model['id']}"), 404, "not_found", model["id"])
        assert_error(outsider.call("GET", f"/models/{model['id']}/file"), 404, "not_found")
        assert names(outsider) == []


def test_public_model_is_listed_visible_and_downloadable(dev, other_dev, app_dev):
    model = create(dev, access_right="PUBLIC")
    for viewer in (other_dev, app_dev):
        assert names(viewer) == ["my-model"]
        assert viewer.call("GET", f"/models/{model['id']}").data == model
        r = viewer.call("GET", f"/models/{model['id']}/file")
        assert r.status_code == 200 and r.body == MODEL_SOURCE


def test_listing_is_own_plus_public_and_admins_see_all(dev, other_dev, make_user):
    create(dev, name="mine-private")
    create(dev, name="mine-public", access_right="PUBLIC")
    create(other_dev, name="theirs-private")
    create(other_dev, name="theirs-public", access_right="PUBLIC")
    assert sorted(names(dev)) == ["mine-private", "mine-public", "theirs-public"]
    admin = make_user("ADMIN")
    assert sorted(names(admin)) == ["mine-private", "mine-public", "theirs-private", "theirs-public"]


def test_listing_by_task(dev):
    create(dev, name="tab")
    create(dev, name="img", task="IMAGE_CLASSIFICATION")
    assert names(dev, "?task=IMAGE_CLASSIFICATION") == ["img"]
    assert names(dev, "?task=TABULAR_REGRESSION") == []
    assert names(dev) == ["tab", "img"]  # oldest first
    assert_error(dev.call("GET", "/models?task=SPEECH"), 400, "invalid_input", "task")


def test_unknown_model(dev):
    assert_error(dev.call("GET", "/models/nope"), 404, "not_found", "'nope'")
    assert_error(dev.call("DELETE", "/models/nope"), 404, "not_found", "'nope'")


# --- deletion ---------------------------------------------------------------------------------

def test_delete_removes_record_and_file_and_frees_the_name(dev, bucket):
    model = create(dev)
    r = dev.call("DELETE", f"/models/{model['id']}")
    assert r.status_code == 200 and r.data["id"] == model["id"]
    assert_error(dev.call("GET", f"/models/{model['id']}"), 404, "not_found")
    assert names(dev) == [] and bucket.keys() == []
    again = create(dev)
    assert again["id"] != model["id"]


def test_delete_by_a_non_owner(dev, other_dev, bucket):
    public = create(dev, name="public", access_right="PUBLIC")
    private = create(dev, name="private")
    assert_error(other_dev.call("DELETE", f"/models/{public['id']}"), 403, "forbidden", "another user")
    assert_error(other_dev.call("DELETE", f"/models/{private['id']}"), 404, "not_found")
    assert sorted(names(dev)) == ["private", "public"] and len(bucket.keys("models/")) == 2


def test_admin_deletes_any_model(dev, make_user):
    model = create(dev)
    admin = make_user("ADMIN")
    assert admin.call("DELETE", f"/models/{model['id']}").status_code == 200
    assert names(dev) == []


def test_app_developer_cannot_delete_a_public_model(dev, app_dev):
    model = create(dev, access_right="PUBLIC")
    assert_error(app_dev.call("DELETE", f"/models/{model['id']}"), 403, "forbidden", "APP_DEVELOPER")
    assert names(dev) == ["my-model"]


def test_delete_while_a_train_job_uses_it_conflicts(dev, bucket):
    model = create(dev)
    ModelItem(model["id"]).update(actions=[ModelItem.train_job_count.set(1)])
    r = dev.call("DELETE", f"/models/{model['id']}")
    assert_error(r, 409, "conflict", "used by a train job")
    assert dev.call("GET", f"/models/{model['id']}").data["train_job_count"] == 1
    assert bucket.keys("models/") == [f"models/{model['id']}/model.py"]
    # and the name stays taken
    assert_error(dev.call("POST", "/models", model_body()), 409, "conflict")

    ModelItem(model["id"]).update(actions=[ModelItem.train_job_count.set(0)])
    assert dev.call("DELETE", f"/models/{model['id']}").status_code == 200
