"""The predict path on fakes: what one request reads and writes, and that a switch, rollback,
stop or new inference job is seen by the very next request, in this process and in another
one sharing the same stores (two Lambda instances), with and without the one-process cache."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import wiring
from chalicelib.entities import Application, InferenceJob, Task, TrainJobStatus, Trial, TrialStatus, UserType
from chalicelib.errors import InvalidInput, NotFound, PayloadTooLarge, Unavailable
from chalicelib.ports import ServingState
from chalicelib.schemas import PredictRequest
from chalicelib.services.payloads import parse_payload
from chalicelib.services.serving_cache import ProcessServingStates

from unit.services.fakes import FakeApplicationStore, services

TABULAR = Task.TABULAR_CLASSIFICATION
QUERY = {"query": [1.0, 2.0]}


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")


def serve(h, dev, app="app"):
    """A new STOPPED train job of ``app`` with one completed trial, served by a new inference
    job; returns the job (its ``app_version`` is the train job's)."""
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
    h.fakes.clock.advance(seconds=1)
    version = h.fakes.train_jobs.get(job_id).app_version
    out = h.services.inference_jobs.create_inference_job(dev, app, app_version=version)
    return h.fakes.inference_jobs.get(out["id"])


def endpoint_asked(h, services_=None, actor=None, app="app"):
    """Predict once; the endpoint that answered."""
    (services_ or h.services).predict.predict(actor, app, QUERY)
    return h.fakes.endpoints.invocations[-1][0]


def other_instance(h, **settings):
    """Another process's services (a second Lambda instance) over the same stores."""
    return wiring.build(h.settings.with_values(**settings), **h.fakes.parts())


# -- what one request costs ------------------------------------------------------------------


def test_a_request_reads_only_the_apps_row_and_writes_nothing(h, dev):
    serve(h, dev)
    h.services.predict.predict(dev, "app", QUERY)  # the first request reads the job once
    h.fakes.reset_calls()
    for _ in range(5):
        h.services.predict.predict(dev, "app", QUERY)
    calls = {name: dict(store.calls) for name, store in h.fakes.stores().items() if store.calls}
    # the sink is CloudWatch's EMF: a log line per request, no call to AWS
    assert calls == {"apps": {"serving_state": 5}, "endpoints": {"invoke": 5}, "metrics_sink": {"emit": 5}}
    h.services.predict.flush_metrics()
    assert h.fakes.app_metrics.calls == {"add_minute": 1}  # 5 requests of one app-minute: one write


def test_a_registered_app_is_read_with_its_jobs_in_the_same_read(h, dev):
    serve(h, dev)
    h.services.apps.register_application(dev, "app", None, "none", 1_000_000, top_n=1)
    h.services.predict.predict(dev, "app", QUERY)
    h.fakes.reset_calls()
    assert h.services.predict.predict(dev, "app", QUERY)["prediction"] == {"1": 0.75}
    assert h.fakes.apps.calls == {"serving_state": 1} and h.fakes.inference_jobs.calls == {}


def harness(cached: bool):
    from settings_support import make_settings

    h = services(settings=make_settings(serving_state_cache=True) if cached else None)
    return h, h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")


def test_the_one_process_cache_reads_the_row_once():
    h, user = harness(cached=True)
    serve(h, user)
    h.fakes.reset_calls()
    for _ in range(5):
        h.services.predict.predict(user, "app", QUERY)
    assert h.fakes.apps.calls == {"serving_state": 1}
    h.services.close()


# -- a change is seen by the very next request ---------------------------------------------


@pytest.mark.parametrize("cached", [False, True], ids=["row read per request", "one-process cache"])
def test_switch_rollback_stop_and_new_job_are_seen_by_the_next_request(cached):
    h, user = harness(cached)
    v1, v2 = serve(h, user), serve(h, user)
    s = h.services
    assert endpoint_asked(h, actor=user) == v2.endpoint_name  # unregistered: the newest version
    s.apps.register_application(user, "app", None, "none", 1_000_000)
    assert endpoint_asked(h, actor=user) == v2.endpoint_name
    s.apps.set_model_version(user, "app", 1)
    assert endpoint_asked(h, actor=user) == v1.endpoint_name
    s.apps.rollback(user, "app")
    assert endpoint_asked(h, actor=user) == v2.endpoint_name
    v3 = serve(h, user)
    assert endpoint_asked(h, actor=user) == v3.endpoint_name
    s.inference_jobs.stop_inference_job(user, "app", 3)
    assert endpoint_asked(h, actor=user) == v2.endpoint_name
    s.apps.update_application(user, "app", top_n=1)
    assert s.predict.predict(user, "app", QUERY)["prediction"] == {"1": 0.75}
    s.apps.delete_application(user, "app")  # unregistered again: its jobs still serve
    assert s.predict.predict(user, "app", QUERY)["prediction"] == {"0": 0.25, "1": 0.75}
    s.inference_jobs.stop_inference_job(user, "app", 2)
    s.inference_jobs.stop_inference_job(user, "app", 1)
    with pytest.raises(NotFound, match="no running inference job"):
        s.predict.predict(user, "app", QUERY)
    h.services.close()


def test_another_instance_sees_a_change_on_its_next_request(h, dev):
    other = other_instance(h)
    v1, v2 = serve(h, dev), serve(h, dev)
    assert endpoint_asked(h, other, dev) == v2.endpoint_name  # the other instance has served the app
    h.services.apps.register_application(dev, "app", None, "none", 1_000_000)
    h.services.apps.set_model_version(dev, "app", 1)  # switched here ...
    assert endpoint_asked(h, other, dev) == v1.endpoint_name  # ... served there at once
    h.services.apps.rollback(dev, "app")
    assert endpoint_asked(h, other, dev) == v2.endpoint_name
    h.services.inference_jobs.stop_inference_job(dev, "app", 2)
    assert endpoint_asked(h, other, dev) == v1.endpoint_name
    v3 = serve(h, dev)
    assert endpoint_asked(h, other, dev) == v3.endpoint_name
    other.close()


def test_a_failed_endpoint_leaves_the_serving_record(h, dev):
    from chalicelib.ports import EndpointState, EndpointUnavailable

    v1, v2 = serve(h, dev), serve(h, dev)
    h.fakes.endpoints.failure = EndpointUnavailable("the inference server exited with code -9")
    h.fakes.endpoints.states[v2.endpoint_name] = EndpointState("Failed", "exited with code -9")
    with pytest.raises(Unavailable, match="code -9"):
        h.services.predict.predict(dev, "app", QUERY)  # no app, so no default: the error
    assert h.fakes.inference_jobs.get(v2.id).status.value == "ERRORED"
    assert h.fakes.apps.serving_state(dev.id, "app").live_job_ids == {v1.id}
    h.fakes.endpoints.failure = None
    assert endpoint_asked(h, actor=dev) == v1.endpoint_name


def test_an_app_whose_row_never_recorded_its_jobs_is_served_and_then_recorded(h, dev):
    """Jobs created before the serving record: served from the job listing until the next job
    of the app records them all."""
    old = serve(h, dev)
    h.fakes.apps.serving.clear()
    assert endpoint_asked(h, actor=dev) == old.endpoint_name
    assert h.fakes.inference_jobs.calls["list_live_of_app"] >= 1
    new = serve(h, dev)
    assert h.fakes.apps.serving_state(dev.id, "app").live_job_ids == {old.id, new.id}
    h.services.inference_jobs.stop_inference_job(dev, "app", new.app_version)
    assert endpoint_asked(h, actor=dev) == old.endpoint_name


def test_a_job_recorded_before_it_is_stored_is_not_served_until_it_is(h, dev):
    v1 = serve(h, dev)
    h.fakes.apps.add_live_jobs(dev.id, "app", ["not-stored-yet"])  # create_inference_job records first
    assert endpoint_asked(h, actor=dev) == v1.endpoint_name


# -- the one-process cache: an entry never outlives a write ------------------------------------


class SwitchDuringRead(FakeApplicationStore):
    """A store whose next ``serving_state`` read lets another thread's write land meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.during_read = None

    def serving_state(self, user_id, name):
        state = super().serving_state(user_id, name)
        if self.during_read:
            write, self.during_read = self.during_read, None
            write()
        return state


def test_a_read_overtaken_by_a_write_is_not_cached():
    store = SwitchDuringRead()
    cache = ProcessServingStates(store)
    store.add(Application("u", "app", None))
    store.add_live_jobs("u", "app", ["j1"])
    store.during_read = lambda: cache.remove_live_job("u", "app", "j1")
    assert cache.serving_state("u", "app").live_job_ids == {"j1"}  # read before the write landed
    assert cache.serving_state("u", "app").live_job_ids == frozenset()  # not cached: read again
    assert store.calls["serving_state"] == 2
    assert cache.serving_state("u", "app").live_job_ids == frozenset() and store.calls["serving_state"] == 2


@pytest.mark.parametrize("write", [
    lambda c: c.add(Application("u", "app", None)),  # refused (registered): still dropped
    lambda c: c.save(Application("u", "app", None, slo_micros=5)),
    lambda c: c.switch_version("u", "app", 2, expected=None),
    lambda c: c.delete("u", "app"),
    lambda c: c.add_live_jobs("u", "app", ["j2"]),
    lambda c: c.remove_live_job("u", "app", "j1"),
], ids=["add", "save", "switch_version", "delete", "add_live_jobs", "remove_live_job"])
def test_every_write_drops_the_cached_state(write):
    store = FakeApplicationStore()
    cache = ProcessServingStates(store)
    store.add(Application("u", "app", None))
    store.add_live_jobs("u", "app", ["j1"])
    cache.serving_state("u", "app")
    cache.serving_state("u", "app")
    assert store.calls["serving_state"] == 1
    try:
        write(cache)
    except Exception:  # noqa: BLE001 - the refused add
        pass
    cache.serving_state("u", "app")
    assert store.calls["serving_state"] == 2


# -- payloads: parsed once, the same errors as before ---------------------------------------


@pytest.mark.parametrize("body, message", [
    ({}, "exactly one of query, queries, input, input_batch, instances; got nothing"),
    ({"query": [1], "input": [1]}, "got query, input"),
    ({"nope": 1}, "got nope"),
    ({"queries": []}, "'queries' is empty"),
    ({"queries": "x"}, "'queries' must be a list"),
    ({"instances": {"a": 1}}, "'instances' must be a list"),
    ([1, 2], "must be a JSON object"),
])
def test_the_schema_and_a_plain_body_refuse_alike(body, message):
    import json

    for parse in (parse_payload, lambda b: PredictRequest.model_validate_json(json.dumps(b)).payload()):
        with pytest.raises(InvalidInput, match=message):
            parse(body)


def test_the_schema_tells_the_styles_apart():
    def parsed(body):
        payload = PredictRequest.model_validate_json(body).payload()
        return payload.style, payload.batch, payload.queries

    assert parsed(b'{"query": [1, 2]}') == ("rafiki", False, [[1, 2]])
    assert parsed(b'{"queries": [[1], [2]]}') == ("rafiki", True, [[1], [2]])
    assert parsed(b'{"input": "x"}') == ("clipper", False, ["x"])
    assert parsed(b'{"input_batch": [[1.5]]}') == ("clipper", True, [[1.5]])
    assert parsed(b'{"instances": [{"t": [1, 2]}, [3]]}') == ("serving", True, [[1, 2], [3]])


def test_too_many_queries_is_a_413_before_any_read(h, dev):
    serve(h, dev)
    h.fakes.reset_calls()
    with pytest.raises(PayloadTooLarge):
        h.services.predict.predict(dev, "app", {"queries": [[1]] * (h.settings.max_queries_per_request + 1)})
    assert h.fakes.apps.calls == {}


def test_the_endpoint_gets_one_json_body(h, dev):
    serve(h, dev)
    h.services.predict.predict(dev, "app", {"queries": [[1, 2], [3, 10**30]]})  # beyond 64 bits: still JSON
    assert h.fakes.endpoints.invocations[-1][1] == [[1, 2], [3, 10**30]]


# -- the job cache ---------------------------------------------------------------------------


def test_a_served_jobs_details_are_read_once(h, dev):
    v1 = serve(h, dev)
    h.fakes.reset_calls()
    for _ in range(3):
        h.services.inference_jobs.serving_job(dev.id, "app", ServingState(None, frozenset({v1.id}), True))
    assert h.fakes.inference_jobs.calls == {"get": 1}
    assert isinstance(h.fakes.inference_jobs.get(v1.id), InferenceJob)


def test_metrics_of_a_request_are_seen_at_once_and_written_once(h, dev):
    serve(h, dev)
    for _ in range(3):
        h.services.predict.predict(dev, "app", {"queries": [[1], [2]]})
    counts = {m["name"]: m["count"] for m in h.services.predict.metrics(dev, "app", 5)}
    assert (counts["kilele.requests"], counts["kilele.queries"], h.fakes.app_metrics.calls["add_minute"]) == (3, 6, 0)
    h.services.predict.flush_metrics()
    counts = {m["name"]: m["count"] for m in h.services.predict.metrics(dev, "app", 5)}
    assert (counts["kilele.requests"], counts["kilele.queries"], h.fakes.app_metrics.calls["add_minute"]) == (3, 6, 1)
    h.fakes.clock.advance(minutes=1)
    h.services.predict.predict(dev, "app", QUERY)
    h.services.close()  # the last minute is written on close
    assert h.fakes.app_metrics.calls["add_minute"] == 2
    assert h.fakes.app_metrics.window(f"{dev.id}#app", h.fakes.clock.now - timedelta(minutes=5))["requests"] == 4
