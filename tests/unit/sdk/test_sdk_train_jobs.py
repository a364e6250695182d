"""Train jobs and trials through the Client: paths, query parameters, bodies, errors, parameters
downloaded from a presigned URL, load_trial_model and wait_for_train_job."""
from __future__ import annotations

import numpy as np
import pytest

from kilele import Client
from kilele.constants import BudgetOption, Task
from kilele.errors import (
    BadRequestError,
    ConflictError,
    DownloadFailedError,
    ForbiddenError,
    KileleError,
    NotFoundError,
    UnprocessableError,
)
from kilele.model import BaseModel, FloatKnob, IntegerKnob, serialize_params

JOB = {"id": "j-1", "app": "iris_app", "app_version": 3, "task": "TABULAR_CLASSIFICATION", "status": "RUNNING",
       "user_id": "u-1", "train_dataset_id": "d-1", "val_dataset_id": "d-2",
       "budget": {"MODEL_TRIAL_COUNT": 2, "TIME_HOURS": 0.5, "GPU_COUNT": 0}, "model_ids": ["m-1", "m-2"],
       "train_args": {}, "datetime_started": "2026-11-23T10:00:00+00:00", "datetime_stopped": None, "error": None}
WORKER = {"service_id": "m-1-0", "model_id": "m-1", "model_name": "logreg", "slot": 0, "status": "RUNNING",
          "execution_arn": "arn:x", "datetime_started": "2026-11-23T10:00:00+00:00", "datetime_stopped": None,
          "error": None}


def trial(no: int, status: str = "COMPLETED", score: float | None = 0.9, **extra) -> dict:
    return {"id": f"t-{no}", "train_job_id": "j-1", "model_id": "m-1", "model_name": "logreg", "worker": "m-1-0",
            "no": no, "knobs": {"c": 0.5, "iters": 10}, "status": status, "screening": False, "score": score,
            "datetime_created": "2026-11-23T10:00:00+00:00", "datetime_started": "2026-11-23T10:00:01+00:00",
            "datetime_stopped": "2026-11-23T10:00:31+00:00" if status in ("COMPLETED", "ERRORED") else None,
            "model_seconds": 1.0, "worker_seconds": 2.0, "has_parameters": status == "COMPLETED",
            "has_onnx": False, "error": None, "error_type": None, **extra}


@pytest.fixture
def client(server):
    return Client(base_url=server.url, token="tok-1")


# ---------------------------------------------------------------------- create


def test_create_train_job_body_with_enum_and_string_budget_keys(server, client):
    server.route("POST", "/train-jobs", 201, {"id": "j-1", "app": "iris_app", "app_version": 1})
    answer = client.create_train_job(
        "iris_app", Task.TABULAR_CLASSIFICATION, "d-1", "d-2",
        budget={BudgetOption.MODEL_TRIAL_COUNT: 5, "time_hours": 0.5, "GPU_COUNT": 0},
        models=["m-1", "m-2"], train_args={"epochs": 3},
    )
    assert answer == {"id": "j-1", "app": "iris_app", "app_version": 1}
    request = server.last("POST", "/train-jobs")
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.json() == {
        "app": "iris_app", "task": "TABULAR_CLASSIFICATION", "train_dataset_id": "d-1", "val_dataset_id": "d-2",
        "budget": {"MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 0.5, "GPU_COUNT": 0},
        "models": ["m-1", "m-2"], "train_args": {"epochs": 3},
    }


def test_create_train_job_defaults_models_null_and_empty_train_args(server, client):
    server.route("POST", "/train-jobs", 201, {"id": "j-1", "app": "a", "app_version": 1})
    client.create_train_job("a", "tabular_classification", "d-1", "d-2", {})
    body = server.last().json()
    assert body["models"] is None and body["train_args"] == {} and body["budget"] == {}
    assert body["task"] == "TABULAR_CLASSIFICATION"


def test_create_train_job_budget_must_be_a_mapping(server, client):
    with pytest.raises(TypeError, match="budget"):
        client.create_train_job("a", "TABULAR_CLASSIFICATION", "d-1", "d-2", [("MODEL_TRIAL_COUNT", 1)])
    assert server.requests == []


@pytest.mark.parametrize("status, cls", [(400, BadRequestError), (404, NotFoundError), (422, UnprocessableError),
                                         (403, ForbiddenError)])
def test_create_train_job_errors_are_typed(server, client, status, cls):
    server.route("POST", "/train-jobs", status, {"error": {"code": "x_code", "message": "dataset 'd-1' is not READY"}})
    with pytest.raises(cls) as info:
        client.create_train_job("a", "TABULAR_CLASSIFICATION", "d-1", "d-2", {"MODEL_TRIAL_COUNT": 1})
    assert info.value.status_code == status
    assert info.value.code == "x_code"
    assert "not READY" in str(info.value)


# ---------------------------------------------------------------------- reading jobs


def test_get_train_jobs_by_user_with_and_without_user_id(server, client):
    server.route("GET", "/train-jobs", 200, [JOB])
    assert client.get_train_jobs_by_user("u-2") == [JOB]
    assert server.last().query == {"user_id": ["u-2"]}
    assert client.get_train_jobs_by_user(None) == [JOB]
    assert server.last().query == {}
    client.get_train_jobs_by_user()
    assert server.last().query == {}


def test_get_train_jobs_by_user_forbidden(server, client):
    server.route("GET", "/train-jobs", 403, {"error": {"code": "forbidden", "message": "only admins"}})
    with pytest.raises(ForbiddenError, match="only admins"):
        client.get_train_jobs_by_user("someone-else")


def test_get_train_jobs_of_app_escapes_the_name(server, client):
    server.route("GET", "/train-jobs/iris_app", 200, [JOB])
    assert client.get_train_jobs_of_app("iris_app") == [JOB]
    server.route("GET", "/train-jobs/a%2Fb", 200, [])
    assert client.get_train_jobs_of_app("a/b") == []
    assert server.last().path == "/train-jobs/a%2Fb"


def test_get_train_job_latest_and_version(server, client):
    server.route("GET", "/train-jobs/iris_app/-1", 200, {**JOB, "workers": [WORKER]})
    server.route("GET", "/train-jobs/iris_app/2", 200, {**JOB, "app_version": 2, "workers": []})
    assert client.get_train_job("iris_app")["workers"] == [WORKER]
    assert client.get_train_job("iris_app", 2)["app_version"] == 2
    assert server.paths() == [("GET", "/train-jobs/iris_app/-1"), ("GET", "/train-jobs/iris_app/2")]


@pytest.mark.parametrize("bad", [0, -2, "latest"])
def test_bad_app_version_fails_before_any_call(server, client, bad):
    with pytest.raises(ValueError, match="app_version"):
        client.get_train_job("iris_app", bad)
    assert server.requests == []


def test_get_train_job_not_found(server, client):
    server.route("GET", "/train-jobs/nope/-1", 404, {"error": {"code": "not_found", "message": "no app 'nope'"}})
    with pytest.raises(NotFoundError, match="no app 'nope'"):
        client.get_train_job("nope")


def test_stop_train_job_and_conflict(server, client):
    server.route("POST", "/train-jobs/iris_app/-1/stop", 200, {**JOB, "status": "STOPPED", "workers": []})
    assert client.stop_train_job("iris_app")["status"] == "STOPPED"
    assert server.last().method == "POST"
    server.route("POST", "/train-jobs/iris_app/3/stop", 409,
                 {"error": {"code": "conflict", "message": "train job iris_app v3 is already STOPPED"}})
    with pytest.raises(ConflictError, match="already STOPPED"):
        client.stop_train_job("iris_app", 3)


def test_trials_of_train_job_and_best_trials(server, client):
    trials = [trial(1, score=0.8), trial(2, score=0.95)]
    server.route("GET", "/train-jobs/iris_app/-1/trials", 200, trials)
    server.route("GET", "/train-jobs/iris_app/3/best-trials", 200, [trials[1]])
    assert client.get_trials_of_train_job("iris_app") == trials
    assert client.get_best_trials_of_train_job("iris_app", 3, max_count=1) == [trials[1]]
    assert server.last().query == {"max_count": ["1"]}
    server.route("GET", "/train-jobs/iris_app/-1/best-trials", 200, trials[::-1])
    client.get_best_trials_of_train_job("iris_app")
    assert server.last().query == {"max_count": ["2"]}  # seed default


# ---------------------------------------------------------------------- trials


def test_get_trial_and_logs(server, client):
    server.route("GET", "/trials/t-1", 200, trial(1))
    server.route("GET", "/trials/t-1/logs", 200, {"trial_id": "t-1", "status": "COMPLETED", "logs": "epoch 1\n"})
    assert client.get_trial("t-1")["knobs"] == {"c": 0.5, "iters": 10}
    assert client.get_trial_logs("t-1") == {"trial_id": "t-1", "status": "COMPLETED", "logs": "epoch 1\n"}
    assert server.last().headers["authorization"] == "Bearer tok-1"


def test_get_trial_not_found(server, client):
    server.route("GET", "/trials/nope", 404, {"error": {"code": "not_found", "message": "no trial 'nope'"}})
    with pytest.raises(NotFoundError, match="no trial 'nope'"):
        client.get_trial("nope")


PARAMS = {"weights": np.arange(6, dtype=np.float64).reshape(2, 3), "bias": 0.25, "classes": "a,b",
          "iters": 10, "blob": b"\x00\x01"}


def serve_params(server, params=PARAMS, trial_id="t-1"):
    blob = serialize_params(params)
    server.route("GET", f"/trials/{trial_id}/parameters", 200, {
        "trial_id": trial_id, "format": "npz",
        "url": f"{server.url}/fake-s3/params/{trial_id}.npz?X-Amz-Signature=abc&X-Amz-Expires=600",
    })
    server.route("GET", f"/fake-s3/params/{trial_id}.npz", 200, blob, {"Content-Type": "application/octet-stream"})
    return blob


def test_get_trial_parameters_downloads_presigned_url_without_auth(server):
    serve_params(server)
    client = Client(base_url=server.url, token="tok-1", api_key="kk_a.b")
    params = client.get_trial_parameters("t-1")
    assert set(params) == set(PARAMS)
    np.testing.assert_array_equal(params["weights"], PARAMS["weights"])
    assert params["bias"] == 0.25 and params["classes"] == "a,b" and params["iters"] == 10
    assert params["blob"] == b"\x00\x01"
    assert server.last("GET", "/trials/t-1/parameters").headers["authorization"] == "Bearer tok-1"
    download = server.last("GET", "/fake-s3/params/t-1.npz")
    assert "authorization" not in download.headers and "x-api-key" not in download.headers
    assert download.query["X-Amz-Signature"] == ["abc"]


def test_get_trial_parameters_of_unfinished_trial_is_a_conflict(server, client):
    server.route("GET", "/trials/t-2/parameters", 409,
                 {"error": {"code": "conflict", "message": "trial 't-2' is ERRORED: it has no parameters"}})
    with pytest.raises(ConflictError, match="no parameters"):
        client.get_trial_parameters("t-2")


def test_expired_presigned_url_raises_download_failed(server, client):
    serve_params(server)
    server.route("GET", "/fake-s3/params/t-1.npz", 403,
                 "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                 {"Content-Type": "application/xml"})
    with pytest.raises(DownloadFailedError) as info:
        client.get_trial_parameters("t-1")
    assert info.value.status_code == 403
    assert info.value.code == "AccessDenied"
    assert "Request has expired" in str(info.value)


def test_unknown_parameters_format_is_refused(server, client):
    server.route("GET", "/trials/t-1/parameters", 200, {"trial_id": "t-1", "format": "pickle", "url": "x"})
    with pytest.raises(KileleError, match="'pickle'"):
        client.get_trial_parameters("t-1")
    assert server.paths() == [("GET", "/trials/t-1/parameters")]


def test_download_trial_parameters_saves_raw_npz(server, client, tmp_path):
    blob = serve_params(server)
    out = tmp_path / "p.npz"
    answer = client.download_trial_parameters("t-1", str(out))
    assert out.read_bytes() == blob
    assert answer == {"trial_id": "t-1", "format": "npz", "path": str(out), "size_bytes": len(blob)}


class TinyModel(BaseModel):
    @staticmethod
    def get_knob_config():
        return {"c": FloatKnob(0.01, 1.0), "iters": IntegerKnob(1, 100)}

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self.weights = None
        self.bias = None

    def train(self, dataset_path, **train_args):
        raise AssertionError("not trained locally")

    def evaluate(self, dataset_path):
        return 0.0

    def predict(self, queries):
        return [float(np.dot(self.weights[0], q) + self.bias) for q in queries]

    def dump_parameters(self):
        return {"weights": self.weights, "bias": self.bias}

    def load_parameters(self, params):
        self.weights = params["weights"]
        self.bias = params["bias"]


def test_load_trial_model_builds_with_knobs_and_loads_parameters(server, client):
    server.route("GET", "/trials/t-1", 200, trial(1))
    serve_params(server, {"weights": np.array([[1.0, 2.0, 3.0]]), "bias": 0.5})
    model = client.load_trial_model("t-1", TinyModel)
    assert isinstance(model, TinyModel)
    assert model.knobs == {"c": 0.5, "iters": 10}
    assert model.predict([[1, 1, 1]]) == [6.5]
    assert "authorization" not in server.last("GET", "/fake-s3/params/t-1.npz").headers
    assert ("GET", "/trials/t-1") in server.paths()


def test_load_trial_model_with_another_class_names_the_class_the_trial_needs(server, client):
    from kilele.errors import KileleError, WrongModelClassError

    class Other(TinyModel):
        def __init__(self, depth):  # would raise its own TypeError with the trial's knobs
            super().__init__(depth=depth)

    server.route("GET", "/trials/t-1", 200, trial(1, model_class="TinyModel"))
    serve_params(server, {"weights": np.array([[1.0, 2.0, 3.0]]), "bias": 0.5})
    with pytest.raises(WrongModelClassError) as e:
        client.load_trial_model("t-1", Other)
    assert isinstance(e.value, KileleError) and isinstance(e.value, TypeError)
    assert "'TinyModel'" in str(e.value) and "'Other'" in str(e.value) and "logreg" in str(e.value)
    assert ("GET", "/fake-s3/params/t-1.npz") not in server.paths()  # nothing downloaded
    assert isinstance(client.load_trial_model("t-1", TinyModel), TinyModel)


# ---------------------------------------------------------------------- wait_for_train_job


def job_sequence(server, statuses, trials_by_step=None):
    """GET /train-jobs/iris_app/{-1,3} answers the statuses in order (the last one repeats)."""
    step = {"n": 0}

    def job_handler(recorded):
        i = min(step["n"], len(statuses) - 1)
        step["n"] += 1
        return server.Canned(200, {**JOB, "status": statuses[i], "workers": [WORKER]})

    def trials_handler(recorded):
        i = min(step["n"] - 1, len(trials_by_step) - 1)
        return server.Canned(200, trials_by_step[i])

    server.handler("GET", "/train-jobs/iris_app/-1", job_handler)
    server.handler("GET", "/train-jobs/iris_app/3", job_handler)
    if trials_by_step is not None:
        server.handler("GET", "/train-jobs/iris_app/3/trials", trials_handler)
    return step


def test_wait_for_train_job_polls_until_stopped_and_pins_the_version(server, client):
    step = job_sequence(server, ["STARTED", "RUNNING", "RUNNING", "STOPPED"])
    job = client.wait_for_train_job("iris_app", poll_rate_sec=0.01)
    assert job["status"] == "STOPPED" and job["workers"] == [WORKER]
    assert step["n"] == 4
    # the first poll resolves "latest" to v3; later polls stay on v3
    assert [p for _, p in server.paths()] == ["/train-jobs/iris_app/-1"] + ["/train-jobs/iris_app/3"] * 3


def test_wait_for_train_job_raises_a_typed_error_with_the_reason_when_the_job_errored(server, client):
    from kilele import KileleError, TrainJobErrored

    reason = "no trial completed; the model check failed (describe-1): ModuleNotFoundError: No module named 'torch'"
    step = {"n": 0}

    def job_handler(recorded):
        step["n"] += 1
        status = "RUNNING" if step["n"] == 1 else "ERRORED"
        return server.Canned(200, {**JOB, "status": status, "error": reason if status == "ERRORED" else None,
                                   "workers": [WORKER]})

    server.handler("GET", "/train-jobs/iris_app/3", job_handler)
    with pytest.raises(TrainJobErrored) as e:
        client.wait_for_train_job("iris_app", 3, poll_rate_sec=0.01)
    assert isinstance(e.value, KileleError) and e.value.error == reason
    assert e.value.job["status"] == "ERRORED" and e.value.job["workers"] == [WORKER]
    assert reason in str(e.value) and "iris_app v3" in str(e.value)


def test_wait_for_train_job_times_out(server, client):
    step = job_sequence(server, ["RUNNING"])
    with pytest.raises(TimeoutError, match="still RUNNING"):
        client.wait_for_train_job("iris_app", timeout=0.2, poll_rate_sec=0.05)
    assert 2 <= step["n"] <= 10


def test_wait_for_train_job_passes_api_errors_through(server, client):
    server.route("GET", "/train-jobs/nope/-1", 404, {"error": {"code": "not_found", "message": "no app"}})
    with pytest.raises(NotFoundError):
        client.wait_for_train_job("nope", timeout=1, poll_rate_sec=0.01)


def test_wait_for_train_job_progress_bar(server, client, capsys):
    job_sequence(server, ["RUNNING", "RUNNING", "STOPPED"], trials_by_step=[
        [trial(1, "RUNNING", None)],
        [trial(1, score=0.7), trial(2, "ERRORED", None), trial(3, "RUNNING", None)],
        [trial(1, score=0.7), trial(2, "ERRORED", None), trial(3, score=0.91), trial(4, score=0.8)],
    ])
    job = client.wait_for_train_job("iris_app", poll_rate_sec=0.01, progress=True)
    assert job["status"] == "STOPPED"
    err = capsys.readouterr().err
    assert "iris_app v3" in err
    assert "4/4" in err  # MODEL_TRIAL_COUNT 2 x 2 models, 3 completed + 1 errored
    assert "best=0.91" in err
    assert ("GET", "/train-jobs/iris_app/3/trials") in server.paths()


def test_wait_for_train_job_progress_open_ended_when_unlimited(server, client, capsys):
    step = {"n": 0}

    def job_handler(recorded):
        step["n"] += 1
        status = "STOPPED" if step["n"] > 1 else "RUNNING"
        return server.Canned(200, {**JOB, "budget": {"MODEL_TRIAL_COUNT": -1}, "status": status})

    server.handler("GET", "/train-jobs/iris_app/-1", job_handler)
    server.handler("GET", "/train-jobs/iris_app/3", job_handler)
    server.route("GET", "/train-jobs/iris_app/3/trials", 200, [trial(1, score=0.5), trial(2, score=0.6)])
    client.wait_for_train_job("iris_app", poll_rate_sec=0.01, progress=True)
    err = capsys.readouterr().err
    assert "iris_app v3: 2trial [" in err  # a counter, no total
    assert "2/" not in err
    assert "best=0.6" in err


def test_without_progress_no_trials_are_fetched(server, client):
    job_sequence(server, ["STOPPED"])
    client.wait_for_train_job("iris_app")
    assert server.paths() == [("GET", "/train-jobs/iris_app/-1")]
