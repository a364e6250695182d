"""create_dataset waits for a large upload's check job (issue 13, finding 3): PENDING, then READY
(returned) or INVALID (DatasetInvalidError with the message); wait=False returns it PENDING."""
from __future__ import annotations

import pytest

from kilele import Client
from kilele.errors import DatasetInvalidError, UnprocessableError

from test_sdk_datasets import DATASET, S3_FIELDS

CSV = b"a,target\n1,x\n" * 50


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(CSV)
    return path


def routes(server, answers: list[dict]) -> None:
    """A presigned upload whose completion answers PENDING, then GET answers ``answers`` in turn."""
    server.route("POST", "/datasets/uploads", 201, {
        "dataset": {**DATASET, "status": "UPLOADING"},
        "upload": {"url": f"{server.url}/fake-s3/bucket", "fields": S3_FIELDS},
    })
    server.route("POST", "/fake-s3/bucket", 204, b"")
    server.route("POST", "/datasets/d-1/complete", 200, {**DATASET, "status": "PENDING"})
    remaining = list(answers)
    server.handler("GET", "/datasets/d-1", lambda _: server.Canned(200, remaining.pop(0)))


def client(server) -> Client:
    c = Client(base_url=server.url, token="t")
    c.max_direct_upload_bytes = 10  # every file here goes through the presigned upload
    return c


def test_a_pending_dataset_is_waited_for_until_ready(server, big_file):
    routes(server, [{**DATASET, "status": "PENDING"}, {**DATASET, "status": "READY", "stats": {"rows": 50}}])
    out = client(server).create_dataset("big", "TABULAR_CLASSIFICATION", dataset_path=str(big_file), poll_rate_sec=0)
    assert (out["status"], out["stats"]) == ("READY", {"rows": 50})
    assert server.paths()[-2:] == [("GET", "/datasets/d-1"), ("GET", "/datasets/d-1")]


def test_an_invalid_dataset_raises_with_the_message(server, big_file):
    routes(server, [{**DATASET, "status": "INVALID", "error": "line 3: the target is empty"}])
    with pytest.raises(DatasetInvalidError, match="dataset d-1 is INVALID: line 3: the target is empty") as caught:
        client(server).create_dataset("big", "TABULAR_CLASSIFICATION", dataset_path=str(big_file), poll_rate_sec=0)
    assert isinstance(caught.value, UnprocessableError)  # as a file checked at once (422) would
    assert caught.value.error == "line 3: the target is empty" and caught.value.dataset["status"] == "INVALID"


def test_wait_false_returns_the_pending_dataset(server, big_file):
    routes(server, [])
    out = client(server).create_dataset("big", "TABULAR_CLASSIFICATION", dataset_path=str(big_file), wait=False)
    assert out["status"] == "PENDING"
    assert ("GET", "/datasets/d-1") not in server.paths()


def test_waiting_has_a_timeout(server, big_file):
    routes(server, [{**DATASET, "status": "PENDING"}] * 3)
    with pytest.raises(TimeoutError, match="still PENDING"):
        client(server).wait_for_dataset("d-1", timeout=0.05, poll_rate_sec=0.04)
