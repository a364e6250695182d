"""End-to-end (issue 11 item 3): a model whose dependencies the worker runtime lacks trains and
serves through the SDK on the real local stack, in the managed image they resolve to.

One model, one image (one real build, kept fast): ``inflection==0.5.1`` (small, pure Python,
from the package registry, absent from the runtime) and ``six==1.16.0`` (older than the
runtime's six, so the image's copy must shadow the runtime's). Its trial's log shows both
imports working, at those versions; its predict answers what it sees, so the answer proves the
endpoint runs in the image too; a stress test naming the image (seed 002's rime_managed_image)
runs its engine there, with a model file that fails unless it sees the image's six; the image
cannot be deleted while the model uses it."""
from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
import pytest
import six

from kilele.errors import ConflictError

from .conftest import EXAMPLES, developers

pytestmark = pytest.mark.slow

DATA = EXAMPLES / "datasets"

MODEL = '''
import inflection
import six

from kilele.model import BaseModel, FixedKnob


def seen():
    return f"{inflection.camelize('kilele_model')} inflection-{inflection.__version__} six-{six.__version__}"


class InImage(BaseModel):
    @staticmethod
    def get_knob_config():
        return {"k": FixedKnob(1)}

    def train(self, dataset_path, **train_args):
        print("imports in the image:", seen(), flush=True)

    def evaluate(self, dataset_path):
        return 0.5

    def predict(self, queries):
        return [{seen(): 1.0} for _ in queries]

    def dump_parameters(self):
        return {}

    def load_parameters(self, params):
        pass
'''

SEEN = "KileleModel inflection-0.5.1 six-1.16.0"

# A RIME-convention model file: it does not even import outside the image.
STRESS_MODEL = '''import inflection
import numpy as np
import six

assert six.__version__ == "1.16.0", f"six {six.__version__}: not the managed image's"


def predict_df(df):
    return 1 / (1 + np.exp(-0.08 * (df["age"].to_numpy() - 40)))
'''


def test_a_model_with_dependencies_the_runtime_lacks_trains_and_serves_in_its_image(stack, tmp_path):
    assert six.__version__ != "1.16.0", "the runtime must have another six for the pin to mean anything"
    clients = developers(stack)
    model_dev, app_dev = clients["MODEL_DEVELOPER"], clients["APP_DEVELOPER"]
    source = tmp_path / "in_image.py"
    source.write_text(MODEL)
    model = model_dev.create_model(name=f"in-image-{uuid.uuid4().hex[:8]}", task="TABULAR_CLASSIFICATION",
                                   model_file_path=str(source), model_class="InImage",
                                   dependencies={"inflection": "0.5.1", "six": "1.16.0"}, access_right="PUBLIC")
    image = model["image"]["name"]
    assert image.startswith("deps-") and model["image"]["status"] in ("PENDING", "BUILDING", "READY")

    app = f"img{uuid.uuid4().hex[:8]}"
    train = app_dev.create_dataset("iris_train", "TABULAR_CLASSIFICATION", dataset_path=str(DATA / "iris_train.csv"))
    val = app_dev.create_dataset("iris_val", "TABULAR_CLASSIFICATION", dataset_path=str(DATA / "iris_val.csv"))
    app_dev.create_train_job(app=app, task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                             val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": 1}, models=[model["id"]])
    job = app_dev.wait_for_train_job(app, timeout=300, poll_rate_sec=1)
    assert job["status"] == "STOPPED", job
    assert job["images"][model["id"]] == {"name": image, "status": "READY", "error": None}
    (trial,) = [t for t in app_dev.get_trials_of_train_job(app) if t["status"] == "COMPLETED"]
    logs = app_dev.get_trial_logs(trial["id"])["logs"]
    assert f"imports in the image: {SEEN}" in logs, logs

    with pytest.raises(ConflictError):  # the model uses it
        model_dev.delete_managed_image(image)

    app_dev.create_inference_job(app)
    deadline = time.monotonic() + 120
    while (served := app_dev.get_running_inference_job(app))["status"] != "RUNNING":
        assert served["status"] == "STARTED" and time.monotonic() < deadline, served
        time.sleep(0.5)
    try:
        assert app_dev.predict(app, query=[5.1, 3.5, 1.4, 0.2]) == {SEEN: 1.0}
    finally:
        app_dev.stop_inference_job(app)

    rng = np.random.default_rng(3)
    age = rng.normal(40, 10, 300).round()
    frame = pd.DataFrame({"age": age, "churned": (rng.random(300) < 1 / (1 + np.exp(-0.08 * (age - 40)))).astype(int)})
    frame.to_csv(tmp_path / "ref.csv", index=False)
    frame.assign(age=frame["age"] + 5).to_csv(tmp_path / "eval.csv", index=False)
    (tmp_path / "stress_model.py").write_text(STRESS_MODEL)
    config = {"run_name": "in the image", "data_info": {"label_col": "churned", "ref_path": str(tmp_path / "ref.csv"),
                                                        "eval_path": str(tmp_path / "eval.csv")},
              "model_info": {"path": str(tmp_path / "stress_model.py")}}
    stress = model_dev.start_stress_test(config, rime_managed_image=image)
    status = stress.get_status(wait_until_finish=True, poll_rate_sec=1)
    assert status["status"] == "SUCCEEDED", stress.get_logs()
    for client in (model_dev, app_dev):
        client.close()
