"""Seed 000's train-job steps on the real local stack: the state machine in moto, the Lambda
shim, the local trial runner and the worker processes, driven through the SDK."""
from __future__ import annotations

import time

import pytest

from kilele.errors import ConflictError, NotFoundError, TrainJobErrored, UnprocessableError
from kilele.model import load_model_class

from .conftest import EXAMPLES, developers, unique_email

pytestmark = pytest.mark.slow

DATA = EXAMPLES / "datasets"
MODELS = EXAMPLES / "models"
SKLEARN = {"scikit-learn": "1.9.1"}

FAILING_MODEL = '''
from kilele.model import BaseModel, IntegerKnob


class Broken(BaseModel):
    @staticmethod
    def get_knob_config():
        return {"k": IntegerKnob(1, 5)}

    def train(self, dataset_path, **train_args):
        raise RuntimeError("this model cannot learn")

    def evaluate(self, dataset_path):
        return 0.0

    def predict(self, queries):
        return []

    def dump_parameters(self):
        return {}

    def load_parameters(self, params):
        pass
'''

SLOW_MODEL = FAILING_MODEL.replace("Broken", "Slow").replace(
    'raise RuntimeError("this model cannot learn")', "import time\n        time.sleep(3600)"
)


@pytest.fixture(scope="module")
def train_stack(stack_factory):
    # Short trial timeout and heartbeats, so the timeout and stop cases end quickly.
    return stack_factory(
        KILELE_TRIAL_TIMEOUT_SECONDS="20",
        KILELE_TRIAL_HEARTBEAT_SECONDS="1",
        KILELE_LOCAL_MAX_PARALLEL_TRIALS="2",
    )


@pytest.fixture(scope="module")
def people(train_stack):
    return developers(train_stack)


@pytest.fixture(scope="module")
def iris(people):
    app_dev = people["APP_DEVELOPER"]
    train = app_dev.create_dataset(name="iris_train", task="TABULAR_CLASSIFICATION",
                                   dataset_path=str(DATA / "iris_train.csv"))
    val = app_dev.create_dataset(name="iris_val", task="TABULAR_CLASSIFICATION",
                                 dataset_path=str(DATA / "iris_val.csv"))
    return train["id"], val["id"]


def _upload(client, path, name, model_class, source=None, tmp_path=None, access="PUBLIC"):
    if source is not None:
        path = tmp_path / f"{name}.py"
        path.write_text(source)
    return client.create_model(name=name, task="TABULAR_CLASSIFICATION", model_file_path=str(path),
                               model_class=model_class, dependencies=SKLEARN, access_right=access)


def test_seed_000_train_job_gives_scored_trials_best_first(people, iris):
    model_dev, app_dev = people["MODEL_DEVELOPER"], people["APP_DEVELOPER"]
    tree = _upload(model_dev, MODELS / "sk_decision_tree.py", unique_email("tree"), "SkDecisionTree")
    logreg = _upload(model_dev, MODELS / "sk_logistic_regression.py", unique_email("lr"), "SkLogisticRegression")
    created = app_dev.create_train_job(
        app="iris_app", task="TABULAR_CLASSIFICATION", train_dataset_id=iris[0], val_dataset_id=iris[1],
        budget={"MODEL_TRIAL_COUNT": 3, "TIME_HOURS": 0.2}, models=[tree["id"], logreg["id"]],
    )
    assert created["app"] == "iris_app" and created["app_version"] >= 1
    job = app_dev.wait_for_train_job("iris_app", timeout=240)
    assert job["status"] == "STOPPED", job
    assert {w["model_name"] for w in job["workers"]} == {tree["name"], logreg["name"]}
    assert {w["status"] for w in job["workers"]} == {"STOPPED"}

    trials = app_dev.get_trials_of_train_job("iris_app")
    assert len(trials) == 6 and {t["status"] for t in trials} == {"COMPLETED"}, trials
    best = app_dev.get_best_trials_of_train_job("iris_app", max_count=3)
    assert [t["score"] for t in best] == sorted((t["score"] for t in trials), reverse=True)[:3]
    assert best[0]["score"] > 0.8 and best[0]["knobs"] and best[0]["model_name"]

    logs = app_dev.get_trial_logs(best[0]["id"])["logs"]
    assert "score" in logs.lower()
    model_class = {tree["name"]: ("sk_decision_tree.py", "SkDecisionTree"),
                   logreg["name"]: ("sk_logistic_regression.py", "SkLogisticRegression")}[best[0]["model_name"]]
    ModelClass = load_model_class(str(MODELS / model_class[0]), model_class[1])
    model = app_dev.load_trial_model(best[0]["id"], ModelClass)
    predictions = model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    assert len(predictions) == 2 and max(predictions[0], key=predictions[0].get) == "0"


def test_a_model_whose_every_trial_raises_errors_its_trials_and_the_job_with_why(people, iris, tmp_path):
    model_dev, app_dev = people["MODEL_DEVELOPER"], people["APP_DEVELOPER"]
    broken = _upload(model_dev, None, unique_email("broken"), "Broken", FAILING_MODEL, tmp_path)
    app_dev.create_train_job(app="broken_app", task="TABULAR_CLASSIFICATION", train_dataset_id=iris[0],
                             val_dataset_id=iris[1], budget={"MODEL_TRIAL_COUNT": 2}, models=[broken["id"]])
    with pytest.raises(TrainJobErrored) as errored:
        app_dev.wait_for_train_job("broken_app", timeout=180)
    assert errored.value.job["status"] == "ERRORED" and "no trial completed" in errored.value.error
    trials = app_dev.get_trials_of_train_job("broken_app")
    assert trials and {t["status"] for t in trials} == {"ERRORED"}
    assert "this model cannot learn" in app_dev.get_trial_logs(trials[0]["id"])["logs"]
    with pytest.raises(ConflictError):
        app_dev.get_trial_parameters(trials[0]["id"])


def test_a_model_that_never_finishes_times_out(people, iris, tmp_path):
    model_dev, app_dev = people["MODEL_DEVELOPER"], people["APP_DEVELOPER"]
    slow = _upload(model_dev, None, unique_email("slow"), "Slow", SLOW_MODEL, tmp_path)
    app_dev.create_train_job(app="slow_app", task="TABULAR_CLASSIFICATION", train_dataset_id=iris[0],
                             val_dataset_id=iris[1], budget={"MODEL_TRIAL_COUNT": 1}, models=[slow["id"]])
    with pytest.raises(TrainJobErrored, match="no trial completed"):  # its only trial timed out
        app_dev.wait_for_train_job("slow_app", timeout=180)
    trials = app_dev.get_trials_of_train_job("slow_app")
    assert [t["error_type"] for t in trials] == ["TrialTimeout"]


def test_stop_train_job_mid_run(people, iris, tmp_path):
    model_dev, app_dev = people["MODEL_DEVELOPER"], people["APP_DEVELOPER"]
    slow = _upload(model_dev, None, unique_email("slow"), "Slow", SLOW_MODEL, tmp_path)
    app_dev.create_train_job(app="stop_app", task="TABULAR_CLASSIFICATION", train_dataset_id=iris[0],
                             val_dataset_id=iris[1], budget={"MODEL_TRIAL_COUNT": -1}, models=[slow["id"]])
    deadline = time.monotonic() + 60
    while not any(t["status"] == "RUNNING" for t in app_dev.get_trials_of_train_job("stop_app")):
        assert time.monotonic() < deadline, "no trial started running"
        time.sleep(0.5)
    stopped = app_dev.stop_train_job("stop_app")
    assert stopped["status"] == "STOPPED"
    deadline = time.monotonic() + 10  # a slot proposing during the stop terminates its trial itself
    while {t["status"] for t in app_dev.get_trials_of_train_job("stop_app")} != {"TERMINATED"}:
        assert time.monotonic() < deadline, app_dev.get_trials_of_train_job("stop_app")
        time.sleep(0.2)
    with pytest.raises(ConflictError):
        app_dev.stop_train_job("stop_app")


def test_two_train_jobs_at_once(people, iris):
    model_dev, app_dev = people["MODEL_DEVELOPER"], people["APP_DEVELOPER"]
    tree = _upload(model_dev, MODELS / "sk_decision_tree.py", unique_email("tree"), "SkDecisionTree")
    for app in ("twin_a", "twin_b"):
        app_dev.create_train_job(app=app, task="TABULAR_CLASSIFICATION", train_dataset_id=iris[0],
                                 val_dataset_id=iris[1], budget={"MODEL_TRIAL_COUNT": 2}, models=[tree["id"]])
    for app in ("twin_a", "twin_b"):
        assert app_dev.wait_for_train_job(app, timeout=240)["status"] == "STOPPED"
        trials = app_dev.get_trials_of_train_job(app)
        assert len(trials) == 2 and {t["status"] for t in trials} == {"COMPLETED"}


def test_train_job_bad_inputs(people, iris):
    app_dev = people["APP_DEVELOPER"]
    with pytest.raises(NotFoundError):
        app_dev.create_train_job(app="x", task="TABULAR_CLASSIFICATION", train_dataset_id="nope",
                                 val_dataset_id=iris[1], budget={"MODEL_TRIAL_COUNT": 1})
    with pytest.raises(UnprocessableError, match="is for TABULAR_CLASSIFICATION"):
        app_dev.create_train_job(app="x", task="TABULAR_REGRESSION", train_dataset_id=iris[0],
                                 val_dataset_id=iris[1], budget={"MODEL_TRIAL_COUNT": 1})
    with pytest.raises(NotFoundError):
        app_dev.get_train_job("no_such_app")
    assert app_dev.get_train_jobs_of_app("x") == []
