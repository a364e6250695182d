"""ApplicationService on fakes: registering apps, their settings, and the version they serve,
switched and rolled back only over versions that run."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.entities import InferenceJob, InferenceJobStatus, InputType, Task, UserType
from chalicelib.errors import Conflict, NotFound


@pytest.fixture
def dev(h):
    return h.user(UserType.APP_DEVELOPER)


@pytest.fixture
def serve(h, dev):
    """``serve(version, status=RUNNING)``: an inference job of ``app`` at that version."""

    def make(version, status=InferenceJobStatus.RUNNING, app="app"):
        job = InferenceJob(id=f"ij-{app}-{version}-{status.value}", user_id=dev.id, app=app, app_version=version,
                           train_job_id=f"tj-{version}", task=Task.TABULAR_CLASSIFICATION,
                           endpoint_name=f"ep-{version}", bundle_key="b", members=[],
                           created_at=h.fakes.clock.now + timedelta(seconds=version), status=status)
        h.fakes.inference_jobs.add(job)
        return job

    return make


def register(h, dev, name="app", **changes):
    values = dict(input_type=InputType.FLOATS, default_output="unknown", slo_micros=50_000, top_n=None)
    values.update(changes)
    return h.services.apps.register_application(dev, name, **values)


def test_an_application_is_registered_once(h, dev):
    out = register(h, dev, default_output={"label": None})
    assert (out["name"], out["input_type"], out["slo_micros"], out["version"]) == ("app", "floats", 50_000, None)
    assert h.fakes.apps.get(dev.id, "app").default_output == {"label": None}
    with pytest.raises(Conflict):
        register(h, dev, slo_micros=1)
    assert h.fakes.apps.get(dev.id, "app").slo_micros == 50_000


def test_applications_are_per_user_and_listed_oldest_first(h, dev):
    register(h, dev, "b")
    h.fakes.clock.advance(seconds=1)
    register(h, dev, "a")
    other = h.user(UserType.APP_DEVELOPER)
    register(h, other, "b")  # the same name for another user
    assert [a["name"] for a in h.services.apps.get_applications(dev)] == ["b", "a"]
    with pytest.raises(NotFound):
        h.services.apps.get_application(other, "a")


def test_an_update_changes_only_the_given_settings(h, dev):
    register(h, dev, top_n=3)
    out = h.services.apps.update_application(dev, "app", slo_micros=10_000, default_output=None, top_n=None)
    assert (out["slo_micros"], out["default_output"], out["top_n"]) == (10_000, "unknown", 3)
    assert h.fakes.apps.get(dev.id, "app").slo_micros == 10_000
    with pytest.raises(NotFound):
        h.services.apps.update_application(dev, "missing", slo_micros=1)


def test_an_application_shows_the_version_it_serves(h, dev, serve):
    register(h, dev)
    assert h.services.apps.get_application(dev, "app")["serving_version"] is None
    serve(1)
    serve(2)
    serve(3, status=InferenceJobStatus.STOPPED)
    assert h.services.apps.get_application(dev, "app")["serving_version"] == 2


def test_a_version_is_served_only_if_it_runs(h, dev, serve):
    register(h, dev)
    serve(1)
    serve(2, status=InferenceJobStatus.ERRORED)
    with pytest.raises(NotFound):
        h.services.apps.set_model_version(dev, "app", 2)
    assert h.fakes.apps.get(dev.id, "app").version is None
    out = h.services.apps.set_model_version(dev, "app", 1)
    assert (out["version"], out["previous_version"]) == (1, -1)  # -1: it followed the latest before


def test_rollback_returns_to_the_version_served_before(h, dev, serve):
    register(h, dev)
    with pytest.raises(Conflict, match="no previous version"):
        h.services.apps.rollback(dev, "app")
    serve(1)
    serve(2)
    h.services.apps.set_model_version(dev, "app", 1)
    h.services.apps.set_model_version(dev, "app", 2)
    out = h.services.apps.rollback(dev, "app")
    assert (out["version"], out["previous_version"]) == (1, 2)
    out = h.services.apps.rollback(dev, "app")
    assert (out["version"], out["previous_version"]) == (2, 1)


def test_rollback_to_the_latest_follows_the_latest_again(h, dev, serve):
    register(h, dev)
    serve(1)
    h.services.apps.set_model_version(dev, "app", 1)
    out = h.services.apps.rollback(dev, "app")
    assert (out["version"], out["previous_version"]) == (None, 1)


def test_rollback_to_a_version_no_longer_running_is_refused(h, dev, serve):
    register(h, dev)
    first, _ = serve(1), serve(2)
    h.services.apps.set_model_version(dev, "app", 1)
    h.services.apps.set_model_version(dev, "app", 2)
    h.fakes.inference_jobs.set_status(first.id, InferenceJobStatus.STOPPED, (InferenceJobStatus.RUNNING,))
    with pytest.raises(NotFound):
        h.services.apps.rollback(dev, "app")
    assert h.fakes.apps.get(dev.id, "app").version == 2


def test_a_switch_that_keeps_losing_the_race_gives_up(h, dev, serve):
    register(h, dev)
    serve(1)
    attempts = []

    def always_raced(user_id, name, version, expected):  # another switch wins every time
        attempts.append((version, expected))
        return False

    h.fakes.apps.switch_version = always_raced
    with pytest.raises(Conflict, match="concurrently"):
        h.services.apps.set_model_version(dev, "app", 1)
    assert attempts == [(1, None)] * 5
    assert h.fakes.apps.get(dev.id, "app").version is None


def test_a_deleted_application_is_gone(h, dev):
    register(h, dev)
    assert h.services.apps.delete_application(dev, "app")["name"] == "app"
    assert h.fakes.apps.get(dev.id, "app") is None
    with pytest.raises(NotFound):
        h.services.apps.delete_application(dev, "app")
