"""The real server (uvicorn + the ASGI app) on 127.0.0.1: contract, errors, batching under load."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from inference_harness import SLOW_MODEL, ServerThread, custom_member, read_csv_features, write_bundle
from kilele_inference import ServerConfig, load_ensemble


@pytest.fixture(scope="module")
def iris_server(iris_bundle):
    with ServerThread(ServerConfig(bundle=str(iris_bundle), max_body_bytes=64 * 1024)) as server:
        server.wait_ready()
        yield server


def post(server, body=None, **kwargs):
    if body is not None:
        kwargs["json"] = body
    return httpx.post(server.url + "/invocations", timeout=10, **kwargs)


def error_of(response, status, code="invalid_input"):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return error["message"]


def test_queries_instances_and_query_payloads(iris_server, iris_bundle):
    queries = read_csv_features("iris")[:3]
    expected = load_ensemble(str(iris_bundle)).predict_batch(queries)
    for key in ("queries", "instances"):
        response = post(iris_server, {key: queries})
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        predictions = response.json()["predictions"]
        assert len(predictions) == 3
        for got, want in zip(predictions, expected):
            assert got == pytest.approx(want, abs=1e-6)
    single = post(iris_server, {"query": queries[1]}).json()
    assert single.keys() == {"prediction", "batch_size"} and single["prediction"] == pytest.approx(expected[1], abs=1e-6)
    assert single["batch_size"] == 1  # the batch its query rode in (the platform's batch_size metric)
    assert post(iris_server, {"queries": []}).json() == {"predictions": [], "batch_size": 0}


def test_ping_metrics_and_info(iris_server):
    assert httpx.get(iris_server.url + "/ping").status_code == 200
    info = httpx.get(iris_server.url + "/").json()
    assert info["app"] == "iris_app" and [m["path"] for m in info["members"]] == ["predict", "onnx"]
    metrics = httpx.get(iris_server.url + "/metrics").json()
    for key in ("requests", "queries", "errors", "batches", "mean_batch_size", "batch_size_target", "latency_ms"):
        assert key in metrics
    assert set(metrics["latency_ms"]) >= {"p50", "p95", "p99", "p99.9", "window"}
    assert metrics["latency_ms"]["window_size"] == 10000


@pytest.mark.parametrize("content, message", [
    (b"", "the body is empty"),
    (b'{"queries": [[1, 2, 3, 4]', "the body is not valid JSON"),
    (b"[[1, 2, 3, 4]]", "the body is a list; send a JSON object"),
    (b'{"data": [[1, 2, 3, 4]]}', "the body has no 'queries', 'instances' or 'query' (its keys: 'data')"),
    (b'{"queries": [[1, 2, 3, 4]], "query": [1, 2, 3, 4]}', "the body has both 'queries' and 'query'"),
    (b'{"queries": {"a": [1, 2, 3, 4]}}', "'queries' must be a list of queries, got an object"),
    (b'{"instances": "1,2,3,4"}', "'instances' must be a list of queries, got the string '1,2,3,4'"),
    (b'{"queries": [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4, 5]]}',
     "query 3 has 5 features, the model expects 4"),
    (b'{"queries": [[1, 2, 3, 4], [1, "two", 3, 4]]}', "query 1 has the string 'two' at [1]"),
    (b'{"queries": [[1, 2, 3, 4], null]}', "query 1 is null; the model expects a list of 4 numbers"),
    (b'{"query": [1, 2, 3]}', "the query has 3 features, the model expects 4"),
    (b'{"query": [1, 2, [3], 4]}', "the query is a ragged nested list"),
])
def test_bad_inputs_get_400_saying_what_is_wrong(iris_server, content, message):
    response = post(iris_server, content=content, headers={"content-type": "application/json"})
    assert message in error_of(response, 400)


def test_bodies_over_the_limit_get_413(iris_server):
    big = b'{"queries": [' + b"[1, 2, 3, 4], " * 6000 + b"[1, 2, 3, 4]]}"  # ~84 KB > 64 KB
    assert "the limit is 65536 bytes" in error_of(post(iris_server, content=big), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit applies while reading
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    assert "larger than the limit" in error_of(post(iris_server, content=chunks()), 413, "payload_too_large")
    assert post(iris_server, {"query": [1, 2, 3, 4]}).status_code == 200  # the server is fine after


def test_unknown_routes_and_methods(iris_server):
    assert error_of(httpx.get(iris_server.url + "/predict"), 404, "not_found").startswith("no route /predict")
    assert error_of(httpx.get(iris_server.url + "/invocations"), 405, "method_not_allowed") == "use POST /invocations"
    assert httpx.post(iris_server.url + "/ping").status_code == 405


def test_64_concurrent_requests_are_batched_and_each_gets_its_own_answers(iris_bundle):
    rows = read_csv_features("iris")
    # Requests of 1 to 3 distinct queries each.
    requests = [[[v + 0.01 * i + 0.001 * j for v in rows[(i + j) % len(rows)]] for j in range(1 + i % 3)]
                for i in range(64)]
    reference = load_ensemble(str(iris_bundle))
    unbatched = [[reference.predict_batch([q])[0] for q in request] for request in requests]

    async def send_all(url):
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            responses = await asyncio.gather(*(client.post("/invocations", json={"queries": r}) for r in requests))
            return responses, (await client.get("/metrics")).json()

    with ServerThread(ServerConfig(bundle=str(iris_bundle))) as server:
        server.wait_ready()
        responses, metrics = asyncio.run(send_all(server.url))

    for response, expected in zip(responses, unbatched):
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == len(expected)
        for got, want in zip(predictions, expected):
            assert got.keys() == want.keys()
            assert all(got[k] == pytest.approx(want[k], abs=1e-6) for k in want)
    assert metrics["requests"] == 64 and metrics["queries"] == sum(len(r) for r in requests)
    assert metrics["errors"] == 0
    assert metrics["batches"] < 64 and metrics["mean_batch_size"] > 1, metrics
    assert metrics["latency_ms"]["window"] == 64 and metrics["latency_ms"]["p50"] > 0


def test_one_bad_query_does_not_fail_other_clients_in_its_batch(tree_bundle):
    # The tree is served by its own predict(): nothing checks queries before the batch, the model
    # rejects the whole batch (kilele.model.InvalidQuery), and the server finds the bad query by
    # evaluating them one by one.
    good = read_csv_features("iris")[:12]
    bad_request = {"queries": [good[0], [1.0, 2.0, 3.0, 4.0, 5.0]]}
    reference = load_ensemble(str(tree_bundle))

    async def send_all(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            bodies = [{"queries": [q]} for q in good[:6]] + [bad_request] + [{"queries": [q]} for q in good[6:]]
            responses = await asyncio.gather(*(client.post("/invocations", json=b) for b in bodies))
            return responses, (await client.get("/metrics")).json()

    with ServerThread(ServerConfig(bundle=str(tree_bundle), max_wait_ms=50)) as server:
        server.wait_ready()
        responses, metrics = asyncio.run(send_all(server.url))
    bad = responses.pop(6)
    message = error_of(bad, 400)
    assert message.startswith("query 1: sk_decision_tree (SkDecisionTree, trial trial-0-sk_decision_tree) rejected it")
    assert "InvalidQuery: a query has 5 features; the model was trained on 4" in message
    for response, query in zip(responses, good):
        assert response.status_code == 200
        assert response.json()["predictions"] == reference.predict_batch([query])
        assert response.json()["batch_size"] >= 1
    assert metrics["mean_batch_size"] > 1 and metrics["errors"] == 1
    assert metrics["errors_by_code"] == {"invalid_input": 1}


def test_ping_is_503_while_the_bundle_loads(tmp_path):
    member = custom_member(tmp_path / "src", SLOW_MODEL, "SlowModel", {"load_seconds": 1.0, "predict_seconds": 0.0})
    bundle = write_bundle(tmp_path / "b", "TABULAR_CLASSIFICATION", [member])
    with ServerThread(ServerConfig(bundle=str(bundle))) as server:
        ping = httpx.get(server.url + "/ping")
        assert ping.status_code == 503 and ping.json() == {"status": "loading"}
        assert "still loading" in error_of(post(server, {"query": [1]}), 503, "not_ready")
        started = time.monotonic()
        server.wait_ready()
        assert time.monotonic() - started < 5
        assert httpx.get(server.url + "/ping").json() == {"status": "ok"}
        assert post(server, {"query": [1]}).json() == {"prediction": {"yes": 0.25, "no": 0.75}, "batch_size": 1}


def test_no_batching_serves_each_request_alone(iris_bundle):
    async def send_all(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await asyncio.gather(*(client.post("/invocations", json={"queries": [[5.1, 3.5, 1.4, 0.2]] * 2})
                                   for _ in range(16)))
            return (await client.get("/metrics")).json()

    with ServerThread(ServerConfig(bundle=str(iris_bundle), batching=False)) as server:
        server.wait_ready()
        metrics = asyncio.run(send_all(server.url))
    assert metrics["batches"] == 16 and metrics["mean_batch_size"] == 2.0
    assert metrics["batching"] is False and metrics["batch_size_target"] == 1


def test_regression_over_http(ridge_bundle, diabetes_ridge):
    queries = read_csv_features("diabetes")[:5]
    with ServerThread(ServerConfig(bundle=str(ridge_bundle))) as server:
        server.wait_ready()
        predictions = post(server, {"instances": queries}).json()["predictions"]
        message = error_of(post(server, {"query": queries[0][:4]}), 400)
    assert predictions == pytest.approx(diabetes_ridge.model.predict(queries), rel=1e-5)
    assert message == "the query has 4 features, the model expects 10"
