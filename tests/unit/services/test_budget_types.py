"""Budget numbers keep their types (issue 10): ``MODEL_TRIAL_COUNT: 5`` comes back as 5, not
5.0, from the request body through the service and its store to the answer."""
from __future__ import annotations

import json

from chalicelib.entities import Task, UserType
from chalicelib.schemas import CreateInferenceJobRequest, CreateTrainJobRequest


def test_a_train_jobs_budget_comes_back_as_it_was_sent(h):
    dev = h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")
    data = h.dataset(dev)
    model = h.model(dev)
    body = {"app": "app", "task": "TABULAR_CLASSIFICATION", "train_dataset_id": data.id, "val_dataset_id": data.id,
            "budget": {"MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 0.1, "GPU_COUNT": 0}, "models": [model.id]}
    request = CreateTrainJobRequest.model_validate_json(json.dumps(body), strict=True)
    h.services.train_jobs.create_train_job(dev, request.app, Task.TABULAR_CLASSIFICATION, data.id, data.id,
                                           request.budget_dict(), [model.id])
    budget = h.services.train_jobs.get_train_job(dev, "app")["budget"]
    assert json.dumps(budget, sort_keys=True) == '{"GPU_COUNT": 0, "MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 0.1}'


def test_counts_sent_as_whole_floats_are_counts():
    request = CreateInferenceJobRequest.model_validate_json('{"app": "a", "budget": {"GPU_COUNT": 1.0}}', strict=True)
    assert json.dumps(request.budget_dict()) == '{"GPU_COUNT": 1}'
