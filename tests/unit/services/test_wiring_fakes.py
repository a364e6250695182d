"""The fakes build every service through the one composition root, and nothing reaches AWS:
the ``aws`` part refuses any use, and sockets and botocore calls are blocked while a whole
flow runs (users, datasets, models, a train job's trial loop, an inference job, predict)."""
from __future__ import annotations

import socket

import botocore.client
import pytest

from chalicelib.entities import Task, TrainJobStatus, UserType
from chalicelib.services.trial_loop import slot_state

from unit.services.fakes import NoAws, services

KNOB_CONFIG = {"x": {"type": "integer", "value_min": 0, "value_max": 100, "is_exp": False}}
MODEL_SOURCE = b"from kilele.model import BaseModel\n\n\nclass M(BaseModel):\n    pass\n"
CSV = b"x1,x2,target\n1,2,a\n3,4,b\n5,6,a\n"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a faked service opened a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)


def test_every_part_is_faked():
    from chalicelib import wiring

    h = services()
    assert set(h.fakes.parts()) == wiring._KNOWN_PARTS
    assert isinstance(h.services.aws, NoAws)
    assert h.services.endpoints is h.fakes.endpoints
    assert h.services.trial_dispatcher is h.fakes.trial_dispatcher
    assert h.services.tokens is h.fakes.tokens
    with pytest.raises(AssertionError, match="touched AWS"):
        h.services.aws.client("s3")


def test_a_whole_flow_runs_on_the_fakes_without_aws(no_network):
    h = services()
    s, f = h.services, h.fakes
    root = s.users.ensure_superadmin("root@kilele", "pw")
    s.users.create_user(root, "dev@example.com", "pw2", UserType.MODEL_DEVELOPER)
    dev = s.auth.authenticate(s.auth.login("dev@example.com", "pw2")["token"], None)

    dataset = s.datasets.create_from_bytes(dev, "d", Task.TABULAR_CLASSIFICATION, CSV, target_column="target")
    model = s.models.create(dev, "m", Task.TABULAR_CLASSIFICATION, "M", MODEL_SOURCE)
    created = s.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, dataset["id"], dataset["id"],
                                            {"MODEL_TRIAL_COUNT": 1}, model_ids=[model["id"]])
    job = f.train_jobs.get(created["id"])
    assert len(f.workflows.started) == len(job.workers) == h.settings.worker_slots_per_model

    worker = next(iter(job.workers.values()))
    state = slot_state(job.id, worker.key, worker.model_id, worker.slot)
    assert s.trial_loop.propose(state)["proposal"]["action"] == "describe"
    s.trial_loop.record_knob_config({**state, "result": {"knob_config": KNOB_CONFIG}})
    run = s.trial_loop.propose(state)
    assert run["proposal"]["action"] == "run"
    trial_id = run["proposal"]["trial"]["id"]
    f.blobs.put_bytes(f.trials.get(trial_id).params_key, b"params")
    s.trial_loop.record_trial({**run, "result": {"score": 0.9}})
    for key, w in job.workers.items():
        s.trial_loop.finish_worker(slot_state(job.id, key, w.model_id, w.slot))
    assert f.train_jobs.get(job.id).status is TrainJobStatus.STOPPED

    served = s.inference_jobs.create_inference_job(dev, "app")
    assert served["status"] == "RUNNING"
    answer = s.predict.predict(dev, "app", {"queries": [[1, 2]]})
    assert answer["predictions"] == [{"0": 0.25, "1": 0.75}]
    s.close()
