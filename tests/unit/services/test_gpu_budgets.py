"""GPU_COUNT > 0 where the platform has no GPU: refused at create (422) with why and what to ask
instead, and nothing is stored, counted or started; where it has GPUs, the same budget goes on."""
from __future__ import annotations

import pytest

from chalicelib.entities import Task, TrainJobStatus, Trial, TrialStatus, UserType
from chalicelib.errors import Unprocessable
from chalicelib.services.gpus import GpuSupport

from unit.services.fakes import services

TABULAR = Task.TABULAR_CLASSIFICATION
NO_GPU = GpuSupport(training=False, serving=False, training_missing="no NVIDIA GPU is visible on this machine",
                    serving_missing="no SageMaker GPU inference image is configured")


def _developer(h):
    dev = h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")
    return dev, h.dataset(dev), h.model(dev)


def _create(h, dev, data, model, gpus):
    return h.services.train_jobs.create_train_job(dev, "app", TABULAR, data.id, data.id,
                                                  {"MODEL_TRIAL_COUNT": 1, "GPU_COUNT": gpus}, [model.id])


def test_a_train_job_asking_for_gpus_where_trials_get_none_is_refused_and_nothing_starts():
    h = services(gpus=NO_GPU)
    dev, data, model = _developer(h)
    with pytest.raises(Unprocessable) as refused:
        _create(h, dev, data, model, 2)
    message = str(refused.value)
    assert message.startswith("budget GPU_COUNT 2 asked, but this platform has no GPU for trials")
    assert "no NVIDIA GPU is visible on this machine" in message and "ask GPU_COUNT 0 to train on CPU" in message
    assert h.fakes.train_jobs.items == {} and h.fakes.workflows.started == {}
    assert _create(h, dev, data, model, 0)["app_version"] == 1  # the refusal took no app version


def test_an_inference_job_asking_for_gpus_where_endpoints_get_none_is_refused_and_nothing_is_deployed():
    h = services(gpus=GpuSupport(training=True, serving=False, serving_missing=NO_GPU.serving_missing))
    dev, data, model = _developer(h)
    job_id = _create(h, dev, data, model, 1)["id"]  # trials may have GPUs where endpoints have none
    h.fakes.trials.add(Trial(id="t1", train_job_id=job_id, model_id=model.id, model_name=model.name,
                             worker_key=f"{model.id}-0", number=1, knobs={}, fingerprint="1",
                             created_at=h.fakes.clock.now, status=TrialStatus.COMPLETED, score=0.9,
                             params_key="trials/t1/params.npz"))
    h.fakes.blobs.put_bytes("trials/t1/params.npz", b"npz")
    h.fakes.train_jobs.set_status(job_id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,))
    with pytest.raises(Unprocessable, match=r"GPU_COUNT 1 asked, but this platform has no GPU for endpoints "
                                            r"\(no SageMaker GPU inference image is configured\); ask GPU_COUNT 0"):
        h.services.inference_jobs.create_inference_job(dev, "app", budget={"GPU_COUNT": 1})
    assert h.fakes.inference_jobs.items == {} and h.fakes.endpoints.deployed == {}
    served = h.services.inference_jobs.create_inference_job(dev, "app", budget={"GPU_COUNT": 0})
    assert served["status"] == "RUNNING" and h.fakes.endpoints.gpu == {h.fakes.inference_jobs.get(served["id"])
                                                                        .endpoint_name: False}


def test_with_gpus_the_same_budgets_go_on():
    h = services(gpus=GpuSupport())
    dev, data, model = _developer(h)
    job = h.fakes.train_jobs.get(_create(h, dev, data, model, 1)["id"])
    assert job.budget["GPU_COUNT"] == 1 and len(job.workers) == 1
