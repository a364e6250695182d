"""InputQueue / OutputQueue (Cluster Serving's Python API) against the fake server: request
paths and bodies, input encoding (numpy, strings, bytes, images), polling, typed errors."""
from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from kilele import Client, EnqueueFailedError, InputQueue, KileleError, OutputQueue, PredictionFailedError
from kilele.errors import BadRequestError, NotFoundError, PayloadTooLargeError, ServerError, UnauthorizedError
from kilele.queues import encode

ENQUEUED = {"enqueued": 1}


def error(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def pending(uri: str) -> dict:
    return error("not_found", f"no result yet for {uri} in queue 'iris'")


@pytest.fixture
def inputs(server) -> InputQueue:
    return InputQueue("iris", base_url=server.url, api_key="key-1")


@pytest.fixture
def outputs(server) -> OutputQueue:
    return OutputQueue("iris", base_url=server.url, api_key="key-1")


def _png(color=(255, 0, 0)) -> Image.Image:
    return Image.new("RGB", (3, 2), color)


def _decode_png(text: str) -> Image.Image:
    data = base64.b64decode(text)
    assert data.startswith(b"\x89PNG")
    return Image.open(io.BytesIO(data))


# ---------------------------------------------------------------------------- enqueue


def test_enqueue_a_numpy_array_is_the_query_itself(server, inputs):
    server.route("POST", "/queues/iris/items", 202, ENQUEUED)
    assert inputs.enqueue("flower-1", t=np.array([[5.1, 3.5], [1.4, 0.2]], dtype=np.float32)) == ENQUEUED
    sent = server.last("POST", "/queues/iris/items")
    assert sent.headers["x-api-key"] == "key-1"
    assert sent.json() == {"items": [{"uri": "flower-1", "data": [[pytest.approx(5.1), pytest.approx(3.5)],
                                                                 [pytest.approx(1.4), pytest.approx(0.2)]]}]}


def test_enqueue_several_inputs_make_a_dict(server, inputs):
    server.route("POST", "/queues/iris/items", 202, ENQUEUED)
    inputs.enqueue("mixed", text="a cat", tensor1=np.array([1, 2]), tensor2=np.int64(7), raw=b"\x00\x01")
    data = server.last().json()["items"][0]["data"]
    assert data == {"text": "a cat", "tensor1": [1, 2], "tensor2": 7, "raw": base64.b64encode(b"\x00\x01").decode()}


def test_enqueue_a_string_stays_a_string(server, inputs):
    server.route("POST", "/queues/iris/items", 202, ENQUEUED)
    inputs.enqueue("s", text="path/looking/string.png")
    assert server.last().json()["items"][0]["data"] == "path/looking/string.png"


def test_enqueue_images_as_base64_png(server, inputs, tmp_path):
    server.route("POST", "/queues/iris/items", 202, ENQUEUED)
    jpeg = tmp_path / "cat.jpg"
    _png((0, 255, 0)).save(jpeg, format="JPEG")
    png = tmp_path / "dog.png"
    _png((0, 0, 255)).save(png, format="PNG")

    inputs.enqueue("pil", img=_png())
    assert _decode_png(server.last().json()["items"][0]["data"]).getpixel((0, 0)) == (255, 0, 0)
    inputs.enqueue("jpeg", img={"path": str(jpeg)})  # Cluster Serving's image form, converted to PNG
    assert _decode_png(server.last().json()["items"][0]["data"]).size == (3, 2)
    inputs.enqueue("png", img=png)  # a pathlib.Path: the PNG file's own bytes
    assert base64.b64decode(server.last().json()["items"][0]["data"]) == png.read_bytes()
    inputs.enqueue("both", img={"path": str(png)}, t=np.zeros(2))
    data = server.last().json()["items"][0]["data"]
    assert set(data) == {"img", "t"} and data["t"] == [0.0, 0.0]


def test_enqueue_a_missing_image_file_fails_before_any_call(server, inputs, tmp_path):
    with pytest.raises(FileNotFoundError):
        inputs.enqueue("x", img={"path": str(tmp_path / "nope.png")})
    assert server.requests == []


def test_enqueue_needs_an_input(server, inputs):
    with pytest.raises(ValueError, match="keyword argument"):
        inputs.enqueue("x")
    assert server.requests == []


def test_enqueue_many_sends_one_request(server, inputs):
    server.route("POST", "/queues/iris/items", 202, {"enqueued": 3})
    assert inputs.enqueue_many({f"u{i}": np.full(2, i) for i in range(3)}) == {"enqueued": 3}
    assert server.last().json()["items"] == [{"uri": f"u{i}", "data": [i, i]} for i in range(3)]


def test_the_queue_name_and_uri_are_escaped(server):
    # the API refuses such names with a 400 that says why; they must not change the route
    queue = OutputQueue("a b", base_url=server.url)
    server.route("GET", "/queues/a%20b/results/x%3Fy%2Fz", 200, {"uri": "x?y/z", "status": "ok", "value": 1})
    assert queue.query("x?y/z") == 1


@pytest.mark.parametrize("status, body, exc", [
    (400, error("invalid_input", "items.0.uri: String should match pattern"), BadRequestError),
    (401, error("unauthenticated", "no credentials"), UnauthorizedError),
    (413, error("payload_too_large", "item 'x' is 300000 bytes"), PayloadTooLargeError),
    (503, error("unavailable", "queue full: 10000 items are waiting"), ServerError),
])
def test_enqueue_errors_are_typed(server, inputs, status, body, exc):
    server.route("POST", "/queues/iris/items", status, body)
    with pytest.raises(exc) as caught:
        inputs.enqueue("x", t=[1.0])
    assert caught.value.status_code == status and caught.value.message == body["error"]["message"]
    assert not isinstance(caught.value, EnqueueFailedError)


def test_a_partly_enqueued_request_names_the_items_to_retry(server, inputs):
    server.route("POST", "/queues/iris/items", 503, error(
        "unavailable", "1 of 3 items were enqueued; not enqueued (retry these): 'b', 'c'", enqueued=1,
        failed=["b", "c"]))
    with pytest.raises(EnqueueFailedError) as caught:
        inputs.enqueue_many({"a": [1], "b": [2], "c": [3]})
    assert caught.value.failed == ["b", "c"] and caught.value.enqueued == 1
    assert caught.value.status_code == 503 and isinstance(caught.value, ServerError)


def test_a_client_can_be_shared(server):
    client = Client(base_url=server.url, token="tok-9")
    server.route("POST", "/queues/iris/items", 202, ENQUEUED)
    InputQueue("iris", client=client).enqueue("a", t=[1])
    assert server.last().headers["authorization"] == "Bearer tok-9"


def test_host_and_port(server):
    queue = InputQueue("iris", host="127.0.0.1", port=server.port, api_key="k")
    server.route("POST", "/queues/iris/items", 202, ENQUEUED)
    queue.enqueue("a", t=[1])
    assert server.last().path == "/queues/iris/items" and "iris" in repr(queue)


# ---------------------------------------------------------------------------- predict (sync)


def test_predict_sends_one_instance_and_returns_its_prediction(server, inputs):
    server.route("POST", "/apps/iris/predict", 200, {"predictions": [{"0": 0.9, "1": 0.1}]})
    assert inputs.predict(np.array([5.1, 3.5, 1.4, 0.2])) == {"0": 0.9, "1": 0.1}
    assert server.last().json() == {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def test_predict_errors_are_typed(server, inputs):
    server.route("POST", "/apps/iris/predict", 404, error("not_found", "app 'iris' has no running inference job"))
    with pytest.raises(NotFoundError, match="no running inference job"):
        inputs.predict([1.0])


# ---------------------------------------------------------------------------- query and dequeue


def test_query_returns_the_value(server, outputs):
    server.route("GET", "/queues/iris/results/u1", 200,
                 {"uri": "u1", "status": "ok", "value": {"0": 0.2, "1": 0.8}, "error": None, "default": False})
    assert outputs.query("u1") == {"0": 0.2, "1": 0.8}
    assert server.last().headers["x-api-key"] == "key-1"


def test_query_without_a_result_is_none_at_once(server, outputs):
    server.route("GET", "/queues/iris/results/u1", 404, pending("u1"))
    started = time.monotonic()
    assert outputs.query("u1") is None
    assert time.monotonic() - started < 1 and len(server.requests) == 1


def test_query_with_a_timeout_polls_until_the_result_is_there(server, outputs):
    answers = iter([404, 404, 200])

    def handler(recorded):
        status = next(answers, 200)
        if status == 404:
            return server.Canned(404, pending("u1"))
        return server.Canned(200, {"uri": "u1", "status": "ok", "value": [1, 2], "error": None})

    server.handler("GET", "/queues/iris/results/u1", handler)
    assert outputs.query("u1", timeout=10, poll_interval=0.01) == [1, 2]
    assert len(server.requests) == 3


def test_query_gives_up_after_the_timeout(server, outputs):
    server.route("GET", "/queues/iris/results/u1", 404, pending("u1"))
    started = time.monotonic()
    assert outputs.query("u1", timeout=0.3, poll_interval=0.05) is None
    assert 0.25 <= time.monotonic() - started < 2 and len(server.requests) >= 2


def test_query_of_a_failed_item_raises(server, outputs):
    server.route("GET", "/queues/iris/results/u1", 200, {"uri": "u1", "status": "error", "value": None,
                                                         "error": "app 'iris' has no running inference job"})
    with pytest.raises(PredictionFailedError) as caught:
        outputs.query("u1", timeout=5)
    assert isinstance(caught.value, KileleError) and caught.value.uri == "u1"
    assert "no running inference job" in str(caught.value)
    assert len(server.requests) == 1  # an error result is final: no polling


def test_query_other_errors_are_raised_not_polled(server, outputs):
    server.route("GET", "/queues/iris/results/u1", 401, error("unauthenticated", "bad key"))
    with pytest.raises(UnauthorizedError):
        outputs.query("u1", timeout=5)


def test_dequeue_returns_values_and_failed_items(server, outputs):
    server.route("POST", "/queues/iris/dequeue", 200, {"results": {"a": {"0": 1.0}, "b": [3]},
                                                       "errors": {"c": "the model rejected the queries: bad"}})
    results = outputs.dequeue()
    assert results["a"] == {"0": 1.0} and results["b"] == [3]
    assert isinstance(results["c"], PredictionFailedError) and "rejected" in results["c"].message
    assert server.last().method == "POST"


def test_dequeue_of_an_empty_queue(server, outputs):
    server.route("POST", "/queues/iris/dequeue", 200, {"results": {}, "errors": {}})
    assert outputs.dequeue() == {}


def test_unreachable_server(closed_port):
    from kilele.errors import ConnectionFailedError

    with pytest.raises(ConnectionFailedError):
        OutputQueue("iris", port=closed_port).dequeue()
    with pytest.raises(ConnectionFailedError):
        InputQueue("iris", port=closed_port).enqueue("a", t=[1])


def test_encode_leaves_json_alone():
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": "d"}}
    assert encode(value) == value
    assert json.dumps(encode((np.float32(1.5), np.arange(2)))) == "[1.5, [0, 1]]"
