"""DatasetService on fakes: direct uploads, URL downloads and presigned uploads; a file becomes
a READY dataset only once it passes its task's check, and a refused file leaves nothing behind."""
from __future__ import annotations

import pytest

from chalicelib.entities import DatasetStatus, Task, UserType
from chalicelib.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable

from unit.services.fakes import services

TABULAR = Task.TABULAR_CLASSIFICATION
CSV = b"x1,x2,target\n1,2,a\n3,4,b\n5,6,a\n"
NO_TARGET = b"x1,x2\n1,2\n3,4\n"


@pytest.fixture
def dev(h):
    return h.user(UserType.APP_DEVELOPER)


def test_a_direct_upload_is_checked_and_stored(h, dev):
    out = h.services.datasets.create_from_bytes(dev, "iris", TABULAR, CSV, target_column="target")
    assert (out["status"], out["size_bytes"], out["owner_id"]) == ("READY", len(CSV), dev.id)
    stored = h.fakes.datasets.get(out["id"])
    assert h.fakes.blobs.get_bytes(stored.object_key) == CSV
    assert out["stats"] and stored.stats == out["stats"]


def test_a_file_that_fails_its_check_leaves_nothing(h, dev):
    with pytest.raises(Unprocessable):
        h.services.datasets.create_from_bytes(dev, "bad", TABULAR, NO_TARGET, target_column="target")
    assert h.fakes.datasets.items == {} and h.fakes.blobs.objects == {}


def test_a_direct_upload_over_the_limit_is_refused(h, dev):
    small = services(settings=h.settings.with_values(max_direct_upload_bytes=len(CSV) - 1))
    with pytest.raises(PayloadTooLarge, match="presigned upload"):
        small.services.datasets.create_from_bytes(dev, "iris", TABULAR, CSV, target_column="target")
    assert small.fakes.blobs.objects == {}


def test_a_failed_record_write_removes_the_file(h, dev):
    h.fakes.datasets.failures["save"] = RuntimeError("table unavailable")
    with pytest.raises(RuntimeError):
        h.services.datasets.create_from_bytes(dev, "iris", TABULAR, CSV, target_column="target")
    assert h.fakes.blobs.objects == {}


def test_a_dataset_is_downloaded_from_a_url(h, dev):
    h.fakes.url_fetcher.pages["https://example.com/iris.csv"] = CSV
    out = h.services.datasets.create_from_url(dev, "iris", TABULAR, "https://example.com/iris.csv", "target")
    assert out["status"] == "READY"
    assert h.fakes.blobs.get_bytes(h.fakes.datasets.get(out["id"]).object_key) == CSV
    assert h.fakes.url_fetcher.calls["fetch"] == 1


def test_an_empty_or_failing_download_is_refused(h, dev):
    h.fakes.url_fetcher.pages["https://example.com/empty"] = b""
    with pytest.raises(Unprocessable, match="empty"):
        h.services.datasets.create_from_url(dev, "e", TABULAR, "https://example.com/empty", "target")
    with pytest.raises(Unprocessable):
        h.services.datasets.create_from_url(dev, "m", TABULAR, "https://example.com/missing", "target")
    assert h.fakes.datasets.items == {}


def test_a_presigned_upload_reserves_an_uploading_dataset(h, dev):
    out = h.services.datasets.start_upload(dev, "big", TABULAR, 10_000, target_column="target")
    dataset = h.fakes.datasets.get(out["dataset"]["id"])
    assert dataset.status is DatasetStatus.UPLOADING
    assert out["upload"]["fields"]["key"] == dataset.object_key
    assert h.services.datasets.list(dev) == []  # not usable yet
    with pytest.raises(PayloadTooLarge):
        h.services.datasets.start_upload(dev, "huge", TABULAR, h.settings.max_dataset_bytes + 1)


def test_a_completed_upload_is_checked_and_becomes_ready(h, dev):
    out = h.services.datasets.start_upload(dev, "big", TABULAR, 10_000, target_column="target")
    key = h.fakes.datasets.get(out["dataset"]["id"]).object_key
    h.fakes.blobs.put_bytes(key, CSV)  # what the client sent to the presigned URL
    done = h.services.datasets.complete_upload(dev, out["dataset"]["id"])
    assert (done["status"], done["size_bytes"]) == ("READY", len(CSV))
    assert h.fakes.datasets.get(done["id"]).status is DatasetStatus.READY
    with pytest.raises(Conflict, match="already READY"):
        h.services.datasets.complete_upload(dev, done["id"])


def test_a_bad_uploaded_file_is_deleted_with_its_dataset(h, dev):
    out = h.services.datasets.start_upload(dev, "big", TABULAR, 10_000, target_column="target")
    key = h.fakes.datasets.get(out["dataset"]["id"]).object_key
    h.fakes.blobs.put_bytes(key, NO_TARGET)
    with pytest.raises(Unprocessable):
        h.services.datasets.complete_upload(dev, out["dataset"]["id"])
    assert h.fakes.datasets.items == {} and h.fakes.blobs.objects == {}


def test_completing_before_uploading_keeps_the_reservation(h, dev):
    out = h.services.datasets.start_upload(dev, "big", TABULAR, 10_000, target_column="target")
    with pytest.raises(NotFound):
        h.services.datasets.complete_upload(dev, out["dataset"]["id"])
    assert h.fakes.datasets.get(out["dataset"]["id"]).status is DatasetStatus.UPLOADING


def test_datasets_are_private_to_their_owner_and_admins(h, dev):
    mine = h.services.datasets.create_from_bytes(dev, "mine", TABULAR, CSV, target_column="target")
    other, admin = h.user(UserType.MODEL_DEVELOPER), h.user(UserType.ADMIN)
    theirs = h.services.datasets.create_from_bytes(other, "theirs", TABULAR, CSV, target_column="target")
    assert [d["id"] for d in h.services.datasets.list(dev)] == [mine["id"]]
    assert {d["id"] for d in h.services.datasets.list(admin)} == {mine["id"], theirs["id"]}
    assert h.services.datasets.list(dev, task=Task.TABULAR_REGRESSION) == []
    with pytest.raises(NotFound):
        h.services.datasets.get(other, mine["id"])
    assert h.services.datasets.get(admin, mine["id"])["name"] == "mine"


def test_an_iam_user_gets_a_direct_key_under_its_own_prefix(h, dev):
    out = h.services.datasets.start_upload(dev, "big", TABULAR, 10_000, target_column="target",
                                           iam_principal="arn:aws:iam::123456789012:user/team/alice")
    dataset = h.fakes.datasets.get(out["dataset"]["id"])
    assert dataset.object_key == f"direct/alice/datasets/{dataset.id}/data"
    assert out["direct"] == {"bucket": h.settings.data_bucket, "key": dataset.object_key,
                             "endpoint_url": h.settings.aws_endpoint_url or None}
    h.fakes.blobs.put_bytes(dataset.object_key, CSV)  # what boto3's upload_file sent
    assert h.services.datasets.complete_upload(dev, dataset.id)["status"] == "READY"


@pytest.mark.parametrize("principal", [None, "arn:aws:sts::123456789012:assumed-role/ml/alice-laptop",
                                       "arn:aws:iam::123456789012:role/ml"])
def test_roles_and_unsigned_callers_keep_the_presigned_post_only(h, dev, principal):
    out = h.services.datasets.start_upload(dev, "big", TABULAR, 10_000, iam_principal=principal)
    assert out["direct"] is None
    assert out["upload"]["fields"]["key"] == f"datasets/{out['dataset']['id']}/data"
