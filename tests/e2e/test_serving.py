"""Seed 000 to its end (inference job, POST /predict) and seed 004's Clipper flow on the real
local stack: inference server processes started by the local endpoint runner, predict through
the SDK and curl in all three payload styles, SLO defaults, version switch and rollback under
load, a killed endpoint started again (and one that keeps dying, ERRORED), bad payloads, and a
bundle served from a fresh virtual environment."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time


import pytest
import requests

from kilele.archive import safe_extract
from kilele.errors import BadRequestError, NotFoundError, PayloadTooLargeError

from .conftest import EXAMPLES, REPO, developers, free_port, unique_email

pytestmark = pytest.mark.slow

DATA = EXAMPLES / "datasets"
MODELS = EXAMPLES / "models"
SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]

SLOW_PREDICT_MODEL = '''
import time
from kilele.model import BaseModel, FixedKnob


class SlowPredict(BaseModel):
    @staticmethod
    def get_knob_config():
        return {"delay": FixedKnob(3.0)}

    def train(self, dataset_path, **train_args):
        pass

    def evaluate(self, dataset_path):
        return 0.5

    def predict(self, queries):
        time.sleep(self.knobs["delay"])
        return [{"0": 1.0} for _ in queries]

    def dump_parameters(self):
        return {}

    def load_parameters(self, params):
        pass
'''


# Answers what scikit-learn answers: probabilities as a list by class index (seed 003's shape).
LIST_MODEL = '''
import base64
import pickle

import numpy as np
from sklearn.tree import DecisionTreeClassifier

from kilele.model import BaseModel, FixedKnob, load_tabular


class ListTree(BaseModel):
    @staticmethod
    def get_knob_config():
        return {"max_depth": FixedKnob(3)}

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self._clf = DecisionTreeClassifier(max_depth=knobs["max_depth"], random_state=0)

    def train(self, dataset_path, **train_args):
        data = load_tabular(dataset_path)
        self._clf.fit(data.features, data.target)

    def evaluate(self, dataset_path):
        data = load_tabular(dataset_path)
        return float(np.mean(self._clf.predict(data.features) == data.target))

    def predict(self, queries):
        return self._clf.predict_proba(np.asarray(queries, dtype=np.float64)).tolist()

    def dump_parameters(self):
        return {"model": base64.b64encode(pickle.dumps(self._clf)).decode()}

    def load_parameters(self, params):
        self._clf = pickle.loads(base64.b64decode(params["model"]))
'''


def _wait_running(client, app, version=-1, timeout=120):
    deadline = time.monotonic() + timeout
    while (job := client.get_running_inference_job(app, version))["status"] != "RUNNING":
        assert job["status"] == "STARTED" and time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


@pytest.fixture(scope="module")
def world(stack):
    """An app developer with two trained versions of app ``iris`` (each served by an inference
    job) and an API key, plus the model developer who uploaded the models."""
    clients = developers(stack)
    model_dev, app_dev = clients["MODEL_DEVELOPER"], clients["APP_DEVELOPER"]
    models = [
        model_dev.create_model(name=unique_email(name), task="TABULAR_CLASSIFICATION",
                               model_file_path=str(MODELS / f"{module}.py"), model_class=name,
                               dependencies={"scikit-learn": "1.9.1"}, access_right="PUBLIC")["id"]
        for module, name in (("sk_logistic_regression", "SkLogisticRegression"), ("sk_decision_tree", "SkDecisionTree"))
    ]
    train = app_dev.create_dataset("iris_train", "TABULAR_CLASSIFICATION", dataset_path=str(DATA / "iris_train.csv"))
    val = app_dev.create_dataset("iris_val", "TABULAR_CLASSIFICATION", dataset_path=str(DATA / "iris_val.csv"))
    for _ in range(2):
        app_dev.create_train_job(app="iris", task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                                 val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": 2}, models=models)
        assert app_dev.wait_for_train_job("iris", timeout=240)["status"] == "STOPPED"
    for version in (1, 2):
        created = app_dev.create_inference_job("iris", app_version=version)
        assert created["predictor_url"].endswith("/apps/iris/predict")
        _wait_running(app_dev, "iris", version)
    key = app_dev.create_api_key("predict")["key"]
    yield {"app_dev": app_dev, "model_dev": model_dev, "key": key, "train": train, "val": val}


def test_seed_000_inference_job_and_predict_with_curl(world, stack):
    app_dev, key = world["app_dev"], world["key"]
    job = app_dev.get_running_inference_job("iris")
    assert job["app_version"] == 2 and len(job["workers"]) == 2  # best trial of each model
    url = job["predictor_url"]

    def curl(body):
        out = subprocess.run(["curl", "-sS", "-X", "POST", url, "-H", f"x-api-key: {key}",
                              "-H", "Content-Type: application/json", "-d", json.dumps(body)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    prediction = curl({"query": SETOSA})["prediction"]
    assert max(prediction, key=prediction.get) == "0" and abs(sum(prediction.values()) - 1) < 1e-6
    assert len(curl({"queries": [SETOSA, VIRGINICA]})["predictions"]) == 2
    clipper = curl({"input": VIRGINICA})
    assert max(clipper["output"], key=clipper["output"].get) == "2" and clipper["default"] is False
    assert "query_id" in clipper
    assert len(curl({"instances": [SETOSA, VIRGINICA]})["predictions"]) == 2
    # the same through the SDK
    assert app_dev.predict("iris", query=SETOSA) == prediction
    assert [a["default"] for a in app_dev.query("iris", input_batch=[SETOSA, VIRGINICA])] == [False, False]
    assert len(app_dev.predict_instances("iris", [SETOSA])) == 1


def test_predictor_host_answers_post_predict_and_a_list_stays_a_list(world, tmp_path):
    """Seed 001's predictor_host (seed 000's query_host): POST http://{predictor_host}/predict
    with the caller's key; the model's list of probabilities comes back as a list (it used to
    become {"0": ..}); top-N keeps Cluster Serving's [[index, probability]] form for it."""
    model_dev, app_dev, key = world["model_dev"], world["app_dev"], world["key"]
    path = tmp_path / "list_tree.py"
    path.write_text(LIST_MODEL)
    model = model_dev.create_model(name=unique_email("list_tree"), task="TABULAR_CLASSIFICATION",
                                   model_file_path=str(path), model_class="ListTree",
                                   dependencies={"scikit-learn": "1.9.1"}, access_right="PUBLIC")
    app_dev.create_train_job(app="lists", task="TABULAR_CLASSIFICATION", train_dataset_id=world["train"]["id"],
                             val_dataset_id=world["val"]["id"], budget={"MODEL_TRIAL_COUNT": 1},
                             models=[model["id"]])
    job = app_dev.wait_for_train_job("lists", timeout=180)
    assert job["status"] == "STOPPED" and job["budget"]["MODEL_TRIAL_COUNT"] == 1
    assert isinstance(job["budget"]["MODEL_TRIAL_COUNT"], int)  # the budget keeps its type
    created = app_dev.create_inference_job("lists")
    assert created["predictor_host"] == created["query_host"]
    _wait_running(app_dev, "lists")
    url = f"http://{created['predictor_host']}/predict"
    answer = requests.post(url, json={"query": SETOSA}, headers={"x-api-key": key}, timeout=30)
    assert answer.status_code == 200, answer.text
    prediction = answer.json()["prediction"]
    assert isinstance(prediction, list) and len(prediction) == 3 and prediction.index(max(prediction)) == 0
    assert answer.headers["X-Kilele-Default"] == "false"
    assert app_dev.predict("lists", queries=[SETOSA, VIRGINICA])[1].index(1.0) == 2
    details = app_dev.get_inference_job("lists")  # seed 000's call
    (worker,) = details["workers"]
    assert worker["status"] == "RUNNING" and worker["replicas"] == 1 and worker["trial"]["model_name"]
    app_dev.register_application("lists", "floats", "unknown", 2_000_000, top_n=1)
    assert app_dev.predict_instances("lists", [VIRGINICA]) == [[[2, 1.0]]]
    batch_size = {m["name"]: m for m in app_dev.get_app_metrics("lists")}["kilele.batch_size"]
    assert batch_size["count"] >= 3 and batch_size["mean"] >= 1  # the server says its batch sizes now
    app_dev.stop_inference_job("lists")


def test_clipper_flow_register_link_query_rollback(world):
    app_dev = world["app_dev"]
    app = app_dev.register_application("iris", "floats", "unknown", 2_000_000)
    assert app["slo_micros"] == 2_000_000 and app["version"] is None
    app_dev.link_model_to_app("iris", 2)
    assert app_dev.get_application("iris")["serving_version"] == 2
    answer = app_dev.query("iris", input=SETOSA)
    assert answer["default"] is False
    app_dev.set_model_version("iris", 1)
    assert app_dev.get_application("iris")["serving_version"] == 1
    assert app_dev.rollback_application("iris")["version"] == 2
    with pytest.raises(BadRequestError, match="only numbers"):
        app_dev.query("iris", input=["a", "b", "c", "d"])


def test_version_switch_and_rollback_under_load_drop_no_request(world):
    app_dev = world["app_dev"]
    try:
        app_dev.register_application("iris", "floats", "unknown", 2_000_000)
    except Exception:
        pass  # registered by another test of this module
    failures, answers, stop = [], [], threading.Event()

    def load():
        client = type(app_dev)(base_url=app_dev.get_query_addr(), api_key=world["key"])
        for _ in range(2000):
            if stop.is_set():
                return
            try:
                answer = client.query("iris", input=VIRGINICA)
                answers.append(answer)
                if answer["default"]:
                    failures.append(f"defaulted: {answer.get('default_explanation')}")
            except Exception as e:  # noqa: BLE001 - every failure counts
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            time.sleep(0.3)
            app_dev.set_model_version("iris", 1)
            time.sleep(0.3)
            app_dev.rollback_application("iris")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(answers) > 20 and failures == []


def test_slo_default_with_a_slow_model_never_hangs(world, tmp_path):
    model_dev, app_dev = world["model_dev"], world["app_dev"]
    path = tmp_path / "slow_predict.py"
    path.write_text(SLOW_PREDICT_MODEL)
    model = model_dev.create_model(name=unique_email("slow"), task="TABULAR_CLASSIFICATION",
                                   model_file_path=str(path), model_class="SlowPredict", access_right="PUBLIC")
    app_dev.create_train_job(app="slow", task="TABULAR_CLASSIFICATION", train_dataset_id=world["train"]["id"],
                             val_dataset_id=world["val"]["id"], budget={"MODEL_TRIAL_COUNT": 1},
                             models=[model["id"]])
    assert app_dev.wait_for_train_job("slow", timeout=180)["status"] == "STOPPED"
    app_dev.create_inference_job("slow")
    _wait_running(app_dev, "slow")
    app_dev.register_application("slow", "floats", "too slow", 200_000)
    started = time.monotonic()
    answer = app_dev.query("slow", input=SETOSA)
    elapsed = time.monotonic() - started
    assert answer["default"] is True and answer["output"] == "too slow" and answer["default_explanation"]
    assert elapsed < 1.5, elapsed
    metrics = {m["name"]: m for m in app_dev.get_app_metrics("slow")}
    assert metrics["kilele.defaults"]["count"] >= 1
    app_dev.stop_inference_job("slow")


def _server_pids(endpoint):
    return set(subprocess.run(["pgrep", "-f", f"kilele_inference --bundle .*{endpoint}"], capture_output=True,
                              text=True).stdout.split())


def _kill_servers(endpoint):
    pids = _server_pids(endpoint)
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:  # gone between pgrep and now
            pass
    return pids


def test_a_killed_endpoint_is_started_again_and_the_job_shows_its_restart(world):
    app_dev = world["app_dev"]
    endpoint = app_dev.get_running_inference_job("iris", 1)["endpoint_name"]
    app_dev.set_model_version("iris", 1)
    killed = _kill_servers(endpoint)
    assert killed, f"no inference server process for {endpoint}"
    time.sleep(0.3)
    started = time.monotonic()
    answer = app_dev.query("iris", input=SETOSA)  # the app's default output while it is started again
    assert answer["default"] is True and time.monotonic() - started < 5
    deadline = time.monotonic() + 120
    while (answer := app_dev.query("iris", input=SETOSA))["default"]:
        assert time.monotonic() < deadline, f"the endpoint did not serve again: {answer}"
        time.sleep(0.5)
    assert max(answer["output"], key=answer["output"].get) == "0"
    job = app_dev.get_inference_job("iris", 1)
    assert job["status"] == "RUNNING" and job["error"] is None
    worker = job["workers"][0]
    assert worker["restarts"] == 1 and worker["last_restart"]["at"]
    assert "exited with code -9" in worker["last_restart"]["reason"]
    assert _server_pids(endpoint) and not killed & _server_pids(endpoint)


def test_an_endpoint_that_keeps_dying_ends_its_job_errored_with_the_reason(world):
    app_dev = world["app_dev"]
    endpoint = app_dev.get_running_inference_job("iris", 1)["endpoint_name"]
    deadline = time.monotonic() + 120
    while (job := app_dev.get_inference_job("iris", 1))["status"] == "RUNNING":  # 1 s, 2 s, 4 s backoff
        assert time.monotonic() < deadline, job
        _kill_servers(endpoint)
        time.sleep(0.2)
    assert job["status"] == "ERRORED" and job["error"].startswith("the inference server died again after 3 restart")
    assert "exited with code -9" in job["error"] and job["workers"][0]["restarts"] == 3
    assert not _server_pids(endpoint)  # given up: nothing is started again
    with pytest.raises(NotFoundError):  # pinning a dead version is refused
        app_dev.set_model_version("iris", 1)
    app_dev.set_model_version("iris", 2)


def test_bad_payloads_get_their_4xx(world, stack):
    app_dev, key = world["app_dev"], world["key"]
    url = f"{stack.url}/apps/iris/predict"
    headers = {"x-api-key": key}
    wrong_shape = requests.post(url, json={"query": [1.0, 2.0, 3.0, 4.0, 5.0]}, headers=headers)
    assert wrong_shape.status_code == 400 and "feature" in wrong_shape.json()["error"]["message"]
    wrong_type = requests.post(url, json={"queries": "not a list"}, headers=headers)
    assert wrong_type.status_code == 400
    too_large = requests.post(url, json={"queries": [SETOSA] * 1001}, headers=headers)
    assert too_large.status_code == 413
    unknown = requests.post(f"{stack.url}/apps/nope/predict", json={"query": SETOSA}, headers=headers)
    assert unknown.status_code == 404
    with pytest.raises(PayloadTooLargeError):
        app_dev.predict("iris", queries=[SETOSA] * 1001)


def test_a_bundle_served_in_a_fresh_venv_answers_as_the_endpoint(world, tmp_path):
    app_dev = world["app_dev"]
    exported = app_dev.export_bundle("iris", 2, out_path=str(tmp_path / "iris.tar.gz"))
    bundle = tmp_path / "bundle"
    with tarfile.open(exported["path"]) as archive:
        safe_extract(archive, bundle)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(bundle / "requirements.txt"), str(REPO / "sdk"),
                    str(REPO / "containers" / "inference")], check=True, timeout=900)
    port = free_port()
    server = subprocess.Popen([str(venv / "bin" / "kilele-serve"), "--bundle", str(bundle), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the bundle's server did not start"
            time.sleep(0.3)
        queries = [SETOSA, VIRGINICA, [6.0, 2.9, 4.5, 1.5]]
        served = requests.post(f"http://127.0.0.1:{port}/invocations", json={"queries": queries}).json()["predictions"]
        app_dev.set_model_version("iris", 2)
        endpoint = app_dev.predict("iris", queries=queries)
        for ours, theirs in zip(served, endpoint):
            assert set(ours) == set(theirs) and all(abs(ours[k] - theirs[k]) < 1e-6 for k in ours)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

