"""Seed 003's pub/sub inference on the real local stack: a train job, an inference job, then
InputQueue.enqueue -> the serving consumer (SQS in moto) -> OutputQueue.query / dequeue, and
InputQueue.predict, all through the SDK."""
from __future__ import annotations

import time

import numpy as np
import pytest

from kilele import InputQueue, OutputQueue, PredictionFailedError

from .conftest import EXAMPLES, developers, unique_email

pytestmark = pytest.mark.slow

DATA = EXAMPLES / "datasets"
MODELS = EXAMPLES / "models"
APP = "queue_iris"


def _iris_rows() -> np.ndarray:
    lines = (DATA / "iris_val.csv").read_text().splitlines()[1:]
    return np.array([[float(v) for v in line.split(",")[:-1]] for line in lines if line.strip()])


@pytest.fixture(scope="module")
def serving_app(stack):
    """An app developer's client whose app ``queue_iris`` has a RUNNING inference job."""
    clients = developers(stack)
    model_dev, app_dev = clients["MODEL_DEVELOPER"], clients["APP_DEVELOPER"]
    model = model_dev.create_model(name=unique_email("lr"), task="TABULAR_CLASSIFICATION",
                                   model_file_path=str(MODELS / "sk_logistic_regression.py"),
                                   model_class="SkLogisticRegression", dependencies={"scikit-learn": "1.9.1"},
                                   access_right="PUBLIC")
    train = app_dev.create_dataset(name="iris_train", task="TABULAR_CLASSIFICATION",
                                   dataset_path=str(DATA / "iris_train.csv"))
    val = app_dev.create_dataset(name="iris_val", task="TABULAR_CLASSIFICATION",
                                 dataset_path=str(DATA / "iris_val.csv"))
    app_dev.create_train_job(app=APP, task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                             val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": 2}, models=[model["id"]])
    assert app_dev.wait_for_train_job(APP, timeout=240)["status"] == "STOPPED"
    app_dev.create_inference_job(APP)
    deadline = time.monotonic() + 120
    while (job := app_dev.get_running_inference_job(APP))["status"] != "RUNNING":
        assert job["status"] == "STARTED" and time.monotonic() < deadline, job
        time.sleep(0.5)
    yield app_dev
    app_dev.stop_inference_job(APP)


def _is_class_probabilities(prediction) -> bool:
    return (isinstance(prediction, dict) and set(prediction) == {"0", "1", "2"}
            and abs(sum(prediction.values()) - 1) < 1e-3)


@pytest.mark.localstack  # docs/localstack.md: the e2e subset run against LocalStack
def test_seed_003_enqueue_query_dequeue_and_predict(serving_app):
    input_api = InputQueue(APP, client=serving_app)
    output_api = OutputQueue(APP, client=serving_app)
    rows = _iris_rows()[:20]
    uris = [f"flower-{i}" for i in range(len(rows))]
    for uri, row in zip(uris, rows):
        assert input_api.enqueue(uri, t=row) == {"enqueued": 1}

    # query every uri (waiting for the consumer), then dequeue: everything once, then nothing
    answers = {uri: output_api.query(uri, timeout=60) for uri in uris}
    assert all(_is_class_probabilities(p) for p in answers.values()), answers
    dequeued = output_api.dequeue()
    assert set(dequeued) == set(uris) and dequeued == answers
    assert output_api.dequeue() == {} and output_api.query(uris[0]) is None

    # the synchronous predict agrees with the queue
    sync = input_api.predict(rows[0])
    assert _is_class_probabilities(sync)
    assert max(sync, key=sync.get) == max(answers[uris[0]], key=answers[uris[0]].get)


def test_enqueue_many_then_dequeue_waits_for_nothing_lost(serving_app):
    input_api = InputQueue(APP, client=serving_app)
    output_api = OutputQueue(APP, client=serving_app)
    rows = _iris_rows()[:30]
    assert input_api.enqueue_many({f"batch-{i}": row for i, row in enumerate(rows)}) == {"enqueued": 30}
    collected: dict = {}
    deadline = time.monotonic() + 60
    while len(collected) < 30 and time.monotonic() < deadline:
        collected.update(output_api.dequeue())
        time.sleep(0.2)
    assert set(collected) == {f"batch-{i}" for i in range(30)}
    assert all(_is_class_probabilities(p) for p in collected.values())


def test_a_queue_without_an_inference_job_answers_an_error_result(serving_app):
    InputQueue("no_job_app", client=serving_app).enqueue("x", t=np.zeros(4))
    with pytest.raises(PredictionFailedError, match="there is no app .no_job_app.") as caught:
        OutputQueue("no_job_app", client=serving_app).query("x", timeout=60)
    assert caught.value.uri == "x"
