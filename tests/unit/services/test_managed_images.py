"""The managed-image service on the fakes: the workflow's steps (follow a build, record that it
could not be followed) and what an image's record says at each."""
from __future__ import annotations

from datetime import timedelta

from unit.services.fakes import services


def made(h, name="img"):
    dev = h.user()
    h.services.managed_images.create_managed_image(dev, name, [{"name": "six", "version_specifier": "==1.16.0"}])
    return dev


def test_create_starts_the_build_then_the_workflow_that_follows_it():
    h = services()
    made(h)
    f = h.fakes
    assert [r.pip_argument() for r in f.image_builder.started[0][1]] == ["six==1.16.0"]
    poll = h.settings.image_poll_seconds
    # max_polls: the workflow's own bound, the build deadline's worth of polls and some.
    assert [p for _, p in f.image_workflows.starts] == [{"name": "img", "poll_seconds": poll, "polls": 0,
                                                          "max_polls": 2 * 3600 // max(poll, 1) + 10}]
    assert f.managed_image_records.images["img"].build_id == "build-1"


def test_follow_build_records_ready_once_the_builder_says_so_and_is_final():
    h = services()
    made(h)
    follow = h.services.managed_images.follow_build
    assert follow({"name": "img", "poll_seconds": 0, "polls": 4, "max_polls": 9}) == {
        "name": "img", "poll_seconds": 0, "polls": 5, "max_polls": 9, "final": False, "status": "PENDING"}
    h.fakes.image_builder.finish("build-1", ["six==1.16.0"])
    assert follow({"name": "img", "poll_seconds": 0})["final"] is True
    record = h.fakes.managed_image_records.images["img"]
    assert record.status.value == "READY" and record.installed == {"six": "1.16.0"}


def test_a_build_past_the_deadline_is_failed_and_a_deleted_image_ends_the_workflow():
    h = services()
    made(h)
    h.fakes.clock.advance(timedelta(hours=2, seconds=1))
    assert h.services.managed_images.follow_build({"name": "img"})["final"] is True
    record = h.fakes.managed_image_records.images["img"]
    assert record.status.value == "FAILED" and record.error == "the build did not finish within 2 h"
    poll = h.settings.image_poll_seconds
    assert h.services.managed_images.follow_build({"name": "gone"}) == {
        "name": "gone", "poll_seconds": poll, "polls": 1, "max_polls": 2 * 3600 // max(poll, 1) + 10,
        "final": True, "status": None}


def test_a_build_that_could_not_be_followed_is_failed_with_why_unless_it_already_ended():
    h = services()
    made(h, "a")
    made(h, "b")
    h.fakes.image_builder.finish("build-2", ["six==1.16.0"])
    h.services.managed_images.follow_build({"name": "b"})
    images = h.services.managed_images
    for name in ("a", "b"):
        images.record_follow_failure({"name": name, "failure": {"Error": "Unavailable", "Cause": "CodeBuild is down"}})
    records = h.fakes.managed_image_records.images
    assert records["a"].status.value == "FAILED"
    assert records["a"].error == "following the build failed: Unavailable: CodeBuild is down"
    assert records["b"].status.value == "READY"


def test_a_build_event_records_every_image_the_build_serves_at_once():
    h = services()
    made(h, "a")
    made(h, "b")  # the same set: the same content key
    made(h, "other")
    h.fakes.managed_image_records.images["other"].content_key = "another-key"
    key = h.fakes.managed_image_records.images["a"].content_key
    images = h.services.managed_images
    answer = images.build_event({"key": key, "build_id": "build-1", "status": "FAILED"})
    # The fake builder gave each image its own build: b's still runs, a's died.
    assert answer == {"recorded": True, "images": [{"name": "a", "status": "FAILED"}, {"name": "b", "status": "PENDING"}]}
    records = h.fakes.managed_image_records.images
    assert records["a"].status.value == "FAILED" and records["a"].error == "pip install failed"
    assert records["other"].status.value == "PENDING"
    assert images.build_event({"project-name": "someone else's"}) == {"recorded": False, "images": []}
