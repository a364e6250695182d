"""A model's dependencies resolve to a managed image (issue 11) -- on the fakes: which image, built
once per requirement set, recorded on the model and held by it; the train job's slots wait while
it builds, run in it once READY, and stop with the build's reason if it FAILED."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from chalicelib.entities import StopReason, Task, TrainJobStatus, Trial, TrialStatus, UserType
from chalicelib.entities.images import ImageBase, from_dependencies
from chalicelib.errors import Conflict, InvalidInput, NotFound, Unprocessable
from chalicelib.services.model_images import dependency_image_name
from chalicelib.services.trial_loop import slot_state
from settings_support import make_settings
from unit.services.fakes import services

SOURCE = b"from kilele.model import BaseModel\n\nclass M(BaseModel):\n    pass\n"
KNOBS = {"x": {"type": "integer", "value_min": 0, "value_max": 1000, "is_exp": False}}


@pytest.fixture
def h():
    """The services as the local stack wires them (its builder makes the images endpoints serve
    in too: both bases are its runtime), on the fakes."""
    harness = services(settings=make_settings(image_builder_uri="local:///nonexistent"))
    yield harness
    harness.services.close()


@pytest.fixture
def aws():
    """The services as on AWS (CodeBuild: the inference image is another base than the worker's)."""
    harness = services(settings=make_settings(image_builder_uri="codebuild://kilele-images"))
    yield harness
    harness.services.close()


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER)


def create(h, dev, name="m", dependencies=None):
    return h.services.models.create(dev, name, Task.TABULAR_CLASSIFICATION, "M", SOURCE, dependencies=dependencies)


def test_dependencies_map_to_a_normalised_requirement_set():
    reqs = from_dependencies({"Inflection": "0.5.1", "six": "", "numpy": ">=1.0,<3", "pandas": None})
    assert [r.pip_argument() for r in reqs] == ["inflection==0.5.1", "numpy<3,>=1.0", "pandas", "six"]
    assert from_dependencies({"six": "1.16.0"}) == from_dependencies({"SIX": " 1.16.0 "})
    with pytest.raises(InvalidInput, match="dependencies"):
        from_dependencies({"six": "not a version"})
    with pytest.raises(InvalidInput, match="package name"):
        from_dependencies({"-e git+https://x": ""})


def test_dependencies_the_runtime_lacks_resolve_to_one_image_per_set_built_once(h, dev):
    first = create(h, dev, "a", {"inflection": "0.5.1"})
    name = dependency_image_name(ImageBase.WORKER, from_dependencies({"inflection": "0.5.1"}))
    assert first["image"] == {"name": name, "status": "PENDING", "error": None}
    second = create(h, dev, "b", {"Inflection": "0.5.1"})  # the same set, written otherwise
    assert second["image"]["name"] == name
    assert len(h.fakes.image_builder.started) == 1  # built once
    record = h.fakes.managed_image_records.images[name]
    assert set(record.in_use_by) == {f"model:{first['id']}", f"model:{second['id']}"}
    other = create(h, dev, "c", {"inflection": "0.5.0"})
    assert other["image"]["name"] != name and len(h.fakes.image_builder.started) == 2


def test_dependencies_the_runtime_has_need_no_image(h, dev):
    h.fakes.image_builder.base_installed = {"scikit-learn": "1.9.1", "numpy": "2.4.6"}
    model = create(h, dev, "a", {"scikit-learn": "1.9.1", "numpy": ""})
    assert model["image"] is None and h.fakes.image_builder.started == []
    pinned_older = create(h, dev, "b", {"scikit-learn": "1.5.2"})
    assert pinned_older["image"]["status"] == "PENDING"  # another version than the runtime's: an image


def test_a_bad_dependency_is_refused_before_anything_is_stored(h, dev):
    with pytest.raises(InvalidInput):
        create(h, dev, "a", {"six": "1.16.0; rm -rf /"})
    assert h.fakes.models.items == {} and h.fakes.image_builder.started == []


def test_an_image_a_model_uses_cannot_be_deleted_until_the_model_is(h, dev):
    model = create(h, dev, "a", {"inflection": "0.5.1"})
    name = model["image"]["name"]
    with pytest.raises(Conflict, match=f"model:{model['id']}"):
        h.services.managed_images.delete_managed_image(dev, name)
    h.services.models.delete(dev, model["id"])
    assert h.services.managed_images.delete_managed_image(dev, name)["deleted"] is True


def test_a_failed_image_is_built_again_for_the_next_model_that_needs_it(h, dev):
    first = create(h, dev, "a", {"inflection": "0.5.1"})
    h.fakes.image_builder.fail(h.fakes.image_builder.last(), "ERROR: network down\n")
    assert h.services.models.get(dev, first["id"])["image"]["status"] == "FAILED"
    second = create(h, dev, "b", {"inflection": "0.5.1"})
    assert second["image"]["status"] == "PENDING" and len(h.fakes.image_builder.started) == 2


def job_with(h, dev, dependencies):
    model = create(h, dev, "m", dependencies)
    h.fakes.models.set_knob_config(model["id"], KNOBS)
    data = h.dataset(dev)
    out = h.services.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, data.id, data.id,
                                                 {"TIME_HOURS": 1, "MODEL_TRIAL_COUNT": 3}, [model["id"]])
    job = h.fakes.train_jobs.get(out["id"])
    return model, job, [slot_state(job.id, w.key, w.model_id, w.slot) for w in job.workers.values()]


def test_trials_wait_while_the_image_builds_then_run_in_it(h, dev):
    model, job, (state, *_) = job_with(h, dev, {"inflection": "0.5.1"})
    out = h.services.trial_loop.propose(state)
    assert out["proposal"]["action"] == "wait" and out["proposal"]["seconds"] >= 1
    assert out["proposal"]["status"] == "PENDING" and h.fakes.trials.items == {}
    shown = h.services.train_jobs.get_train_job(dev, "app")
    assert shown["images"] == {model["id"]: {"name": model["image"]["name"], "status": "PENDING", "error": None}}
    h.fakes.image_builder.finish(h.fakes.image_builder.last(), ["inflection==0.5.1"])
    out = h.services.trial_loop.propose(out)
    assert out["proposal"]["action"] == "run"
    assert out["proposal"]["trial"]["image"] == {"name": model["image"]["name"],
                                                 "ref": f"repo:{h.fakes.image_builder.last()}"}


def test_the_model_check_runs_in_the_image_too(h, dev):
    model = create(h, dev, "m", {"inflection": "0.5.1"})
    h.fakes.image_builder.finish(h.fakes.image_builder.last(), ["inflection==0.5.1"])
    data = h.dataset(dev)
    out = h.services.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, data.id, data.id,
                                                 {"TIME_HOURS": 1}, [model["id"]])
    job = h.fakes.train_jobs.get(out["id"])
    worker = next(iter(job.workers.values()))
    described = h.services.trial_loop.propose(slot_state(job.id, worker.key, worker.model_id, worker.slot))
    assert described["proposal"]["action"] == "describe"
    assert described["proposal"]["trial"]["image"]["name"] == model["image"]["name"]


def test_a_failed_image_ends_the_job_errored_saying_where_the_pip_output_is(h, dev):
    model, job, states = job_with(h, dev, {"inflection": "0.5.1"})
    h.fakes.image_builder.fail(h.fakes.image_builder.last(), "ERROR: No matching distribution\n")
    for state in states:  # every slot stops with the reason; the last one ends the job
        out = h.services.trial_loop.propose(state)
        assert out["proposal"]["action"] == "stop" and out["proposal"]["reason"] == StopReason.IMAGE_FAILED.value
        h.services.trial_loop.finish_worker(out)
    ended = h.fakes.train_jobs.get(job.id)
    name = model["image"]["name"]
    assert ended.status is TrainJobStatus.ERRORED
    assert f"managed image {name!r} FAILED" in ended.error and f"kilele managed-images logs {name}" in ended.error
    log = h.services.managed_images.get_build_log(dev, name)
    assert "No matching distribution" in log["log"]  # the pip output, one call away


def test_models_without_dependencies_run_in_the_runtime(h, dev):
    model, job, (state, *_) = job_with(h, dev, {})
    out = h.services.trial_loop.propose(state)
    assert out["proposal"]["action"] == "run" and "image" not in out["proposal"]["trial"]
    assert model["image"] is None


# -- serving ---------------------------------------------------------------------------------------


def served_job(h, dev, dependencies_per_model, finish=True):
    """A STOPPED train job of ``app`` with one completed trial per model (each model created with
    its dependencies, its images finished READY if ``finish``); returns the models."""
    models = [create(h, dev, f"m{i}", deps) for i, deps in enumerate(dependencies_per_model)]
    if finish:
        for build_id, build in list(h.fakes.image_builder.builds.items()):
            h.fakes.image_builder.finish(build_id, ["inflection==0.5.1", "numpy==2.4.6"])
    data = h.dataset(dev)
    job_id = h.services.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, data.id, data.id, {},
                                                    [m["id"] for m in models])["id"]
    for number, model in enumerate(models, 1):
        trial = Trial(id=f"t{number}", train_job_id=job_id, model_id=model["id"], model_name=model["name"],
                      worker_key=f"{model['id']}-0", number=number, knobs={"x": number}, fingerprint=str(number),
                      created_at=h.fakes.clock.now, status=TrialStatus.COMPLETED, score=0.9,
                      params_key=f"trials/t{number}/params.npz")
        h.fakes.trials.add(trial)
        h.fakes.blobs.put_bytes(trial.params_key, b"npz")
    h.fakes.train_jobs.set_status(job_id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,))
    return models


def manifest_of(h, job):
    key = h.fakes.inference_jobs.get(job["id"]).bundle_key
    with tarfile.open(fileobj=io.BytesIO(h.fakes.blobs.get_bytes(key)), mode="r:gz") as archive:
        return json.load(archive.extractfile("kilele-bundle.json")), archive.extractfile("requirements.txt").read()


def test_an_endpoint_serves_in_the_models_image_and_its_bundle_pins_the_images_freeze(h, dev):
    (model, plain) = served_job(h, dev, [{"inflection": "0.5.1", "numpy": ""}, {}])
    job = h.services.inference_jobs.create_inference_job(dev, "app")
    name = model["image"]["name"]
    ref = h.fakes.managed_image_records.images[name].image_ref
    assert h.fakes.endpoints.images[h.fakes.inference_jobs.get(job["id"]).endpoint_name] == ref
    manifest, requirements = manifest_of(h, job)
    assert manifest["image"] == {"name": name, "ref": ref, "pip_freeze": ["inflection==0.5.1", "numpy==2.4.6"]}
    assert requirements.decode().split() == ["inflection==0.5.1", "numpy==2.4.6"]  # the free numpy, pinned


def test_models_needing_different_images_cannot_share_an_endpoint(h, dev):
    served_job(h, dev, [{"inflection": "0.5.1"}, {"inflection": "0.5.0"}])
    with pytest.raises(Unprocessable, match="different managed images"):
        h.services.inference_jobs.create_inference_job(dev, "app")


def test_a_resumed_endpoint_serves_in_the_image_again(h, dev):
    served_job(h, dev, [{"inflection": "0.5.1"}])
    job = h.services.inference_jobs.create_inference_job(dev, "app")
    endpoint = h.fakes.inference_jobs.get(job["id"]).endpoint_name
    image = h.fakes.endpoints.images.pop(endpoint)
    h.fakes.endpoints.deployed.pop(endpoint)  # the local stack stopped: its endpoint processes are gone
    h.services.inference_jobs.resume_endpoints("the stack restarted")
    assert h.fakes.endpoints.images[endpoint] == image


def test_on_aws_a_model_gets_an_inference_image_too_and_is_served_in_it(aws):
    dev = aws.user(UserType.MODEL_DEVELOPER)
    (model,) = served_job(aws, dev, [{"inflection": "0.5.1"}], finish=False)
    assert [base for base, _ in aws.fakes.image_builder.started] == [ImageBase.WORKER, ImageBase.INFERENCE]
    inference = dependency_image_name(ImageBase.INFERENCE, from_dependencies({"inflection": "0.5.1"}))
    assert set(aws.fakes.managed_image_records.images[inference].in_use_by) == {f"model:{model['id']}"}
    with pytest.raises(Conflict, match=f"{inference}.*PENDING"):  # not READY yet: nothing is deployed
        aws.services.inference_jobs.create_inference_job(dev, "app")
    aws.fakes.image_builder.finish("build-2", ["inflection==0.5.1"])
    job = aws.services.inference_jobs.create_inference_job(dev, "app")
    assert aws.fakes.endpoints.images[aws.fakes.inference_jobs.get(job["id"]).endpoint_name] == "repo:build-2"


# -- stress tests ----------------------------------------------------------------------------------


def stress_config(h, user, **changes):
    def upload(name, data=b"x,y\n1,0\n2,1\n"):
        uri = h.services.stress_tests.start_upload(user, name)["uri"]
        h.fakes.blobs.objects[uri.split("/", 3)[3]] = data
        return uri

    value = {"data_info": {"label_col": "y", "ref_path": upload("ref.csv"), "eval_path": upload("eval.csv")},
             "model_info": {"path": upload("model.py", b"def predict_df(df): ...")}}
    value.update(changes)
    return value


def rime_image(h, dev, name="rime-img", base="worker"):
    h.services.managed_images.create_managed_image(dev, name, [{"name": "six", "version_specifier": "==1.16.0"}],
                                                   base=base)
    return h.fakes.image_builder.last()


def test_a_stress_test_runs_in_the_named_managed_image_once_ready_and_holds_it_until_it_ends(h, dev):
    build = rime_image(h, dev)
    with pytest.raises(InvalidInput, match="'rime-img' is PENDING"):  # a 4xx naming its status
        h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), rime_managed_image="rime-img")
    assert h.fakes.stress_test_jobs.items == {}
    with pytest.raises(NotFound):
        h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), rime_managed_image="no-such-image")
    h.fakes.image_builder.finish(build, ["six==1.16.0"])
    job = h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), rime_managed_image="rime-img")
    state = h.fakes.stress_workflows.started[job["job_id"]]
    assert state["message"]["image"] == {"name": "rime-img", "ref": f"repo:{build}"}
    with pytest.raises(Conflict, match=job["job_id"]):  # deleting it is refused while the job runs in it
        h.services.managed_images.delete_managed_image(dev, "rime-img")
    h.services.stress_tests.record({**state, "result": {"test_run_id": job["test_run_id"]}})
    assert h.services.managed_images.delete_managed_image(dev, "rime-img")["deleted"] is True


def test_a_stress_test_image_must_be_over_the_worker(h, dev):
    h.fakes.image_builder.finish(rime_image(h, dev, "served", base="inference"), ["six==1.16.0"])
    with pytest.raises(InvalidInput, match="inference image"):
        h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), rime_managed_image="served")


def test_a_failed_stress_test_releases_its_image(h, dev):
    h.fakes.image_builder.finish(rime_image(h, dev), ["six==1.16.0"])
    job = h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), rime_managed_image="rime-img")
    state = h.fakes.stress_workflows.started[job["job_id"]]
    h.services.stress_tests.record_failure({**state, "failure": {"Error": "TrialError", "Cause": "boom"}})
    assert h.fakes.managed_image_records.images["rime-img"].in_use_by == ()


def test_a_stress_test_ended_by_a_restart_of_the_stack_releases_its_image(h, dev):
    h.fakes.image_builder.finish(rime_image(h, dev), ["six==1.16.0"])
    h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), rime_managed_image="rime-img")
    assert h.services.stress_tests.end_interrupted("the local stack stopped") == 1
    assert h.fakes.managed_image_records.images["rime-img"].in_use_by == ()


def test_a_stress_test_of_a_trial_runs_in_its_models_image(h, dev):
    (model,) = served_job(h, dev, [{"inflection": "0.5.1"}])
    state = None
    h.services.stress_tests.start_stress_test(dev, stress_config(h, dev, model_info={"trial_id": "t1"}))
    [(_, state)] = h.fakes.stress_workflows.starts
    assert state["message"]["image"]["name"] == model["image"]["name"]


# -- docker_image / custom_image: run as given where the platform can --------------------------------


def test_locally_a_docker_image_or_custom_image_is_refused_saying_why(h, dev):
    with pytest.raises(Unprocessable, match="docker_image: the local stack cannot run"):
        h.services.models.create(dev, "m", Task.TABULAR_CLASSIFICATION, "M", SOURCE, docker_image="python:3.11")
    assert h.fakes.models.items == {}
    with pytest.raises(Unprocessable, match="custom_image.name: the local stack cannot run"):
        h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), custom_image={"name": "python:3.11"})
    assert h.fakes.stress_test_jobs.items == {}


@pytest.fixture
def pulls():
    """The AWS wiring with Docker Hub among the registries the stack may pull from."""
    harness = services(settings=make_settings(image_builder_uri="codebuild://kilele-images",
                                              image_pull_registries="docker.io"))
    yield harness
    harness.services.close()


def test_on_aws_a_docker_image_runs_as_given_in_trials_and_serving(pulls):
    h, dev = pulls, pulls.user(UserType.MODEL_DEVELOPER)
    model = h.services.models.create(dev, "m", Task.TABULAR_CLASSIFICATION, "M", SOURCE,
                                     dependencies={"inflection": "0.5.1"}, docker_image="team/xgb:1.7")
    assert model["docker_image"] == "team/xgb:1.7" and model["image"] is None
    assert h.fakes.image_builder.started == []  # its own image has its dependencies: nothing is built
    h.fakes.models.set_knob_config(model["id"], KNOBS)
    data = h.dataset(dev)
    out = h.services.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, data.id, data.id,
                                                 {"TIME_HOURS": 1}, [model["id"]])
    worker = next(iter(h.fakes.train_jobs.get(out["id"]).workers.values()))
    proposed = h.services.trial_loop.propose(slot_state(out["id"], worker.key, worker.model_id, worker.slot))
    assert proposed["proposal"]["trial"]["image"] == {"name": "team/xgb:1.7", "ref": "team/xgb:1.7"}
    with pytest.raises(Unprocessable, match="quay.io"):
        h.services.models.create(dev, "q", Task.TABULAR_CLASSIFICATION, "M", SOURCE, docker_image="quay.io/a/b:1")


def test_on_aws_a_custom_image_runs_the_stress_test_as_given(pulls):
    h, dev = pulls, pulls.user(UserType.MODEL_DEVELOPER)
    job = h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), custom_image={"name": "python:3.11"})
    assert h.fakes.stress_workflows.started[job["job_id"]]["message"]["image"] == {"name": "python:3.11",
                                                                                  "ref": "python:3.11"}
    with pytest.raises(InvalidInput, match="not both"):
        h.services.stress_tests.start_stress_test(dev, stress_config(h, dev), rime_managed_image="x",
                                                  custom_image={"name": "python:3.11"})
