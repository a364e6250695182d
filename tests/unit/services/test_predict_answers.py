"""Predict answers without silent fallbacks (issue 10): what the model returned comes back as
it is, a default output is marked in every payload style, a model error is the model's (not the
caller's), NaN is the caller's bad JSON, an unknown app is unknown, and the metrics' rates are
over the time the app was observed."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.entities import Task, TrainJobStatus, Trial, TrialStatus, UserType
from chalicelib.errors import InvalidInput, ModelFailed, NotFound
from chalicelib.ports import EndpointModelError, EndpointTimeout
from chalicelib.schemas import PredictRequest
from chalicelib.services.payloads import top_n

TABULAR = Task.TABULAR_CLASSIFICATION


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")


def serve(h, dev, app="app"):
    """A STOPPED train job of ``app`` with one completed trial, served by an inference job."""
    data = h.dataset(dev)
    model = h.model(dev)
    job_id = h.services.train_jobs.create_train_job(dev, app, TABULAR, data.id, data.id, {}, [model.id])["id"]
    trial = Trial(id=f"{job_id}-t1", train_job_id=job_id, model_id=model.id, model_name=model.name,
                  worker_key=f"{model.id}-0", number=1, knobs={"x": 1}, fingerprint="1",
                  created_at=h.fakes.clock.now, status=TrialStatus.COMPLETED, score=0.9,
                  params_key=f"trials/{job_id}/params.npz")
    h.fakes.trials.add(trial)
    h.fakes.blobs.put_bytes(trial.params_key, b"npz")
    h.fakes.train_jobs.set_status(job_id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,),
                                  at=h.fakes.clock.now)
    version = h.fakes.train_jobs.get(job_id).app_version
    return h.services.inference_jobs.create_inference_job(dev, app, app_version=version)


def test_a_list_or_a_label_comes_back_as_the_model_returned_it(h, dev):
    serve(h, dev)
    h.fakes.endpoints.answer = lambda queries: [[0.25, 0.75] if q[0] else "cat" for q in queries]
    assert h.services.predict.predict(dev, "app", {"queries": [[1], [0]]})["predictions"] == [[0.25, 0.75], "cat"]


def test_top_n_keeps_cluster_servings_form_for_lists_and_works_on_dicts():
    assert top_n([0.1, 0.7, 0.2], 2) == [[1, 0.7], [2, 0.2]]
    assert top_n({"a": 0.1, "b": 0.7, "c": 0.2}, 1) == {"b": 0.7}
    assert top_n("cat", 1) == "cat"
    assert top_n([0.1, 0.7], 5) == [[1, 0.7], [0, 0.1]]  # N past the classes: all of them, ranked


@pytest.mark.parametrize("body, marked", [
    ({"query": [1]}, lambda a: a["default"] is True and a["prediction"] == "fallback"),
    ({"queries": [[1], [2]]}, lambda a: a["default"] is True and a["predictions"] == ["fallback"] * 2),
    ({"instances": [[1]]}, lambda a: a["default"] is True and a["predictions"] == ["fallback"]),
    ({"input": [1.0]}, lambda a: a["default"] is True and a["output"] == "fallback"),
])
def test_a_default_output_is_marked_in_every_payload_style(h, dev, body, marked):
    serve(h, dev)
    h.services.apps.register_application(dev, "app", None, "fallback", 1_000_000)
    h.fakes.endpoints.failure = EndpointTimeout("the endpoint did not answer within 1 s")
    answer = h.services.predict.predict_answer(dev, "app", body)
    assert marked(answer.body), answer.body
    assert answer.headers == {"X-Kilele-Default": "true"}
    if "input" not in body:
        assert "did not answer" in answer.body["default_explanation"]


def test_a_model_answer_is_not_marked_default_and_keeps_the_seed_shape(h, dev):
    serve(h, dev)
    answer = h.services.predict.predict_answer(dev, "app", {"query": [1]})
    assert answer.body == {"prediction": {"0": 0.25, "1": 0.75}, "query_id": answer.body["query_id"]}
    assert answer.headers == {"X-Kilele-Default": "false"}


def test_a_model_that_raised_is_a_model_error_not_the_callers_and_not_defaulted(h, dev):
    serve(h, dev)
    h.services.apps.register_application(dev, "app", None, "fallback", 1_000_000)
    h.fakes.endpoints.failure = EndpointModelError("query 0: m (M, trial t) failed on it: ValueError: boom")
    with pytest.raises(ModelFailed) as failed:
        h.services.predict.predict(dev, "app", {"query": [1]})
    assert failed.value.code == "model_error" and "ValueError: boom" in failed.value.message


def test_nan_in_a_predict_body_is_the_callers_bad_json(h, dev):
    serve(h, dev)
    payload = PredictRequest.model_validate_json(b'{"queries": [[NaN, 1.0], [1.0, 2.0]]}', strict=True).payload()
    with pytest.raises(InvalidInput) as bad:
        h.services.predict.predict(dev, "app", payload)
    assert "not valid JSON" in bad.value.message and "NaN" in bad.value.message
    assert h.fakes.endpoints.invocations == []  # the model was never asked
    h.services.predict.predict(dev, "app", {"query": [None, 1.0]})  # a real null goes to the model


def test_predict_on_an_unknown_app_says_the_app_is_unknown(h, dev):
    with pytest.raises(NotFound) as unknown:
        h.services.predict.predict(dev, "nope", {"query": [1]})
    assert "there is no app 'nope'" in unknown.value.message
    serve(h, dev)
    h.services.inference_jobs.stop_inference_job(dev, "app")
    with pytest.raises(NotFound) as stopped:  # a known app whose job stopped says so
        h.services.predict.predict(dev, "app", {"query": [1]})
    assert "no running inference job" in stopped.value.message


def test_metrics_of_an_unknown_app_are_not_found(h, dev):
    with pytest.raises(NotFound):
        h.services.predict.metrics(dev, "nope")
    h.services.apps.register_application(dev, "registered", None, "x", 1_000_000)
    assert h.services.predict.metrics(dev, "registered")[0]["count"] == 0


def test_mean_rate_is_over_the_time_the_app_was_observed(h, dev):
    serve(h, dev)
    h.fakes.clock.now = h.fakes.clock.now.replace(second=0, microsecond=0)  # the start of a minute
    for _ in range(30):
        h.services.predict.predict(dev, "app", {"query": [1]})
    h.fakes.clock.advance(seconds=60)  # observed for one minute of a 60-minute window
    requests = next(m for m in h.services.predict.metrics(dev, "app", minutes=60) if m["name"] == "kilele.requests")
    assert requests["count"] == 30
    assert requests["meanRate"] == pytest.approx(30 / 60)  # not 30 / 3600
    h.fakes.clock.advance(timedelta(hours=3))  # nothing in the window any more
    assert h.services.predict.metrics(dev, "app", minutes=60)[0]["meanRate"] == 0
