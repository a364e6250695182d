"""ModelService on fakes: model files checked and stored, visibility (own, PUBLIC, admins),
and deletion refused while a train job uses the model."""
from __future__ import annotations

import pytest

from chalicelib.entities import AccessRight, Task, UserType
from chalicelib.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, Unprocessable

TABULAR = Task.TABULAR_CLASSIFICATION
SOURCE = b"from kilele.model import BaseModel\n\n\nclass M(BaseModel):\n    pass\n"


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER)


def create(h, actor, name="m", task=TABULAR, source=SOURCE, **kwargs):
    return h.services.models.create(actor, name, task, "M", source, **kwargs)


def test_a_model_file_is_checked_and_stored(h, dev):
    out = create(h, dev, dependencies={"scikit-learn": "1.5"})
    model = h.fakes.models.get(out["id"])
    assert (model.owner_id, model.access_right, model.dependencies) == (dev.id, AccessRight.PRIVATE,
                                                                        {"scikit-learn": "1.5"})
    assert h.fakes.blobs.get_bytes(model.object_key) == SOURCE
    assert "object_key" not in out


def test_bad_model_files_are_refused_and_not_stored(h, dev):
    with pytest.raises(Unprocessable):
        create(h, dev, source=b"class M:\n    pass\n")  # not a BaseModel
    with pytest.raises(Unprocessable):
        create(h, dev, source=b"def (")
    with pytest.raises(PayloadTooLarge):
        create(h, dev, source=SOURCE + b"#" * h.settings.max_model_file_bytes)
    assert h.fakes.models.items == {} and h.fakes.blobs.objects == {}


def test_a_duplicate_name_is_a_conflict_and_leaves_no_file(h, dev):
    first = create(h, dev)
    with pytest.raises(Conflict):
        create(h, dev)
    assert h.fakes.blobs.keys("models/") == [h.fakes.models.get(first["id"]).object_key]


def test_app_developers_cannot_upload_models(h):
    with pytest.raises(Forbidden):
        create(h, h.user(UserType.APP_DEVELOPER))


def test_users_see_their_own_and_public_models_admins_all(h, dev):
    other, admin = h.user(UserType.MODEL_DEVELOPER), h.user(UserType.ADMIN)
    mine = create(h, dev, "mine")
    h.fakes.clock.advance(seconds=1)
    public = create(h, other, "public", access_right=AccessRight.PUBLIC)
    h.fakes.clock.advance(seconds=1)
    private = create(h, other, "private", task=Task.TABULAR_REGRESSION)
    assert [m["id"] for m in h.services.models.list_available(dev)] == [mine["id"], public["id"]]
    assert [m["id"] for m in h.services.models.list_available(admin)] == [mine["id"], public["id"], private["id"]]
    assert [m["id"] for m in h.services.models.list_available(admin, Task.TABULAR_REGRESSION)] == [private["id"]]
    with pytest.raises(NotFound):
        h.services.models.get(dev, private["id"])
    model, source = h.services.models.download(dev, public["id"])
    assert (model.name, source) == ("public", SOURCE)


def test_an_unused_model_is_deleted_with_its_file(h, dev):
    out = create(h, dev)
    key = h.fakes.models.get(out["id"]).object_key
    assert h.services.models.delete(dev, out["id"])["id"] == out["id"]
    assert h.fakes.models.get(out["id"]) is None and key not in h.fakes.blobs.objects
    create(h, dev)  # the name is free again


def test_a_model_in_use_is_not_deleted(h, dev):
    out = create(h, dev)
    data = h.dataset(dev)
    h.services.train_jobs.create_train_job(dev, "app", TABULAR, data.id, data.id, {}, [out["id"]])
    with pytest.raises(Conflict, match="used by a train job"):
        h.services.models.delete(dev, out["id"])
    assert h.fakes.blobs.get_bytes(h.fakes.models.get(out["id"]).object_key) == SOURCE


def test_only_the_owner_or_an_admin_deletes_a_model(h, dev):
    public = create(h, dev, access_right=AccessRight.PUBLIC)
    with pytest.raises(Forbidden):
        h.services.models.delete(h.user(UserType.MODEL_DEVELOPER), public["id"])
    h.services.models.delete(h.user(UserType.ADMIN), public["id"])
    assert h.fakes.models.items == {}
