"""The platform images on demand (issue 13; services/platform_images.py) on fakes: admins only,
one build per image whose tag is missing (none for one already there, none doubled while one
runs), and an image-build event when a build starts and when it ends."""
from __future__ import annotations

import pytest

from chalicelib.entities import UserType
from chalicelib.errors import Forbidden, InvalidInput


@pytest.fixture
def admin(h):
    return h.user(UserType.ADMIN)


def statuses(answer: dict) -> dict:
    return {i["name"]: (i["status"], i["started"]) for i in answer["images"]}


def test_only_admins_build_or_read_the_platform_images(h):
    developer = h.user(UserType.MODEL_DEVELOPER)
    with pytest.raises(Forbidden):
        h.services.platform_images.build(developer)
    with pytest.raises(Forbidden):
        h.services.platform_images.status(developer)
    assert h.fakes.platform_image_builder.started == []


def test_a_build_starts_each_missing_image_once(h, admin):
    builder = h.fakes.platform_image_builder
    builder.pushed.add("inference")

    first = h.services.platform_images.build(admin)
    again = h.services.platform_images.build(admin)

    assert statuses(first) == {"worker": ("PENDING", True), "worker-gpu": ("PENDING", True),
                               "inference": ("READY", False), "inference-gpu": ("PENDING", True)}
    assert statuses(again) == {"worker": ("BUILDING", False), "worker-gpu": ("BUILDING", False),
                               "inference": ("READY", False), "inference-gpu": ("BUILDING", False)}
    assert builder.started == ["worker", "worker-gpu", "inference-gpu"]  # unchanged tags: no rebuild
    [image] = [i for i in first["images"] if i["name"] == "worker"]
    assert (image["tag"], image["image_uri"], image["build_id"]) == ("tag-worker", "registry/worker:tag-worker", "build-1")


def test_some_images_by_name_and_an_unknown_one_is_a_400(h, admin):
    assert statuses(h.services.platform_images.build(admin, ["worker"])) == {"worker": ("PENDING", True)}
    with pytest.raises(InvalidInput, match="no platform image 'trainer'"):
        h.services.platform_images.build(admin, ["worker", "trainer"])


def test_a_started_and_an_ended_build_publish_image_build_events(h, admin):
    builder, events = h.fakes.platform_image_builder, h.fakes.event_publisher
    h.services.platform_images.build(admin, ["worker"])
    h.services.platform_images.build(admin, ["worker"])  # followed, not started: no event

    assert h.services.platform_images.build_event(builder.finish("worker", ok=False))["status"] == "FAILED"
    assert h.services.platform_images.build_event({"project-name": "another"}) is None

    assert [c for c in events.changes() if c[1].startswith("platform/")] == [
        ("image_build", "platform/worker", None, "PENDING"), ("image_build", "platform/worker", "BUILDING", "FAILED")]
    ended = [e for e in events.published if e.detail.id == "platform/worker"][-1].detail
    assert ended.reason == "the build ended FAILED" and ended.data["log_url"] == "https://logs/fake"
    assert ended.links == {"images": "/platform-images"}


def test_the_status_reads_every_image(h, admin):
    h.fakes.platform_image_builder.pushed.update({"worker", "inference"})
    answer = h.services.platform_images.status(admin)
    assert {i["name"]: i["status"] for i in answer["images"]} == {
        "worker": "READY", "worker-gpu": "MISSING", "inference": "READY", "inference-gpu": "MISSING"}


def test_a_deployment_that_names_no_images_says_so(h, admin):
    from chalicelib.errors import Unavailable

    h.fakes.platform_image_builder.NAMES = ()
    with pytest.raises(Unavailable, match="KILELE_PLATFORM_IMAGE_TAGS"):
        h.services.platform_images.build(admin)
