"""create_dataset: direct base64 upload for small files, presigned S3 upload for large ones."""
from __future__ import annotations

import base64
from email import message_from_bytes
from email.policy import HTTP

import pytest

from kilele import Client
from kilele.constants import Task
from kilele.errors import ConnectionFailedError, UnprocessableError, UploadFailedError

CSV = b"sepal_length,sepal_width,species\n5.1,3.5,setosa\n6.2,2.9,versicolor\n"
DATASET = {"id": "d-1", "name": "iris", "task": "TABULAR_CLASSIFICATION", "status": "READY",
           "size_bytes": len(CSV), "target_column": "species", "stats": {}, "owner_id": "u-1",
           "datetime_created": "2026-11-23T10:00:00+00:00"}
S3_FIELDS = {"key": "datasets/d-1/data", "AWSAccessKeyId": "testing", "policy": "eyJ4Ijoi", "signature": "c2ln"}


def parse_form(recorded) -> dict[str, tuple[bytes, str | None]]:
    """{field name: (value, filename)} of a multipart/form-data request, in order."""
    raw = f"Content-Type: {recorded.headers['content-type']}\r\n\r\n".encode() + recorded.body
    message = message_from_bytes(raw, policy=HTTP)
    assert message.is_multipart()
    return {part.get_param("name", header="content-disposition"): (part.get_payload(decode=True), part.get_filename())
            for part in message.iter_parts()}


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_bytes(CSV)
    return path


def presigned_routes(server, s3_status=204, s3_body=b""):
    server.route("POST", "/datasets/uploads", 201, {
        "dataset": {**DATASET, "status": "UPLOADING", "size_bytes": 0},
        "upload": {"url": f"{server.url}/fake-s3/bucket", "fields": S3_FIELDS},
    })
    server.route("POST", "/fake-s3/bucket", s3_status, s3_body, {"Content-Type": "application/xml"})
    server.route("POST", "/datasets/d-1/complete", 200, DATASET)


@pytest.mark.parametrize("kwargs", [{}, {"dataset_path": "a.csv", "dataset_url": "https://x/a.csv"}])
def test_exactly_one_source_or_value_error_before_any_call(server, kwargs):
    client = Client(base_url=server.url, token="t")
    with pytest.raises(ValueError, match="exactly one"):
        client.create_dataset("iris", "TABULAR_CLASSIFICATION", **kwargs)
    assert server.requests == []


def test_missing_file_fails_before_any_call(server, tmp_path):
    with pytest.raises(FileNotFoundError):
        Client(base_url=server.url, token="t").create_dataset("iris", "TABULAR_CLASSIFICATION",
                                                              dataset_path=str(tmp_path / "nope.csv"))
    assert server.requests == []


def test_default_threshold_is_the_api_limit():
    assert Client().max_direct_upload_bytes == 4 * 1024 * 1024


def test_small_file_goes_through_the_api(server, csv_file):
    server.route("POST", "/datasets", 201, DATASET)
    client = Client(base_url=server.url, token="t")

    result = client.create_dataset("iris", Task.TABULAR_CLASSIFICATION, dataset_path=str(csv_file),
                                   target_column="species")

    assert result == DATASET
    assert server.paths() == [("POST", "/datasets")]
    body = server.last().json()
    assert base64.b64decode(body.pop("content_base64")) == CSV
    assert body == {"name": "iris", "task": "TABULAR_CLASSIFICATION", "target_column": "species"}


def test_file_at_threshold_still_goes_direct(server, csv_file, monkeypatch):
    server.route("POST", "/datasets", 201, DATASET)
    client = Client(base_url=server.url, token="t")
    monkeypatch.setattr(client, "max_direct_upload_bytes", len(CSV))
    client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path=str(csv_file))
    assert server.paths() == [("POST", "/datasets")]


def test_url_dataset(server):
    server.route("POST", "/datasets", 201, DATASET)
    Client(base_url=server.url, token="t").create_dataset("iris", "TABULAR_CLASSIFICATION",
                                                          dataset_url="https://example.org/iris.csv")
    body = server.last().json()
    assert body == {"name": "iris", "task": "TABULAR_CLASSIFICATION", "dataset_url": "https://example.org/iris.csv"}


def test_large_file_uses_presigned_upload_then_complete(server, csv_file, monkeypatch):
    presigned_routes(server)
    client = Client(base_url=server.url, token="t")
    monkeypatch.setattr(client, "max_direct_upload_bytes", 10)

    result = client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path=str(csv_file),
                                   target_column="species")

    assert result == DATASET
    assert server.paths() == [("POST", "/datasets/uploads"), ("POST", "/fake-s3/bucket"),
                              ("POST", "/datasets/d-1/complete")]
    start = server.requests[0].json()
    assert start == {"name": "iris", "task": "TABULAR_CLASSIFICATION", "target_column": "species",
                     "size_bytes": len(CSV)}
    s3 = server.requests[1]
    # The storage service gets the form, never our credentials.
    assert "authorization" not in s3.headers and "x-api-key" not in s3.headers
    assert s3.headers["content-length"] == str(len(s3.body))
    form = parse_form(s3)
    assert list(form) == [*S3_FIELDS, "file"]  # S3 wants the file last
    assert {k: v.decode() for k, (v, _) in form.items() if k != "file"} == S3_FIELDS
    assert form["file"] == (CSV, "iris.csv")
    assert server.requests[2].headers["authorization"] == "Bearer t"


def test_presigned_upload_streams_a_multi_block_file(server, tmp_path, monkeypatch):
    data = bytes(range(256)) * 9000  # ~2.3 MB, several read blocks
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    presigned_routes(server)
    client = Client(base_url=server.url, token="t")
    monkeypatch.setattr(client, "max_direct_upload_bytes", 1024)

    client.create_dataset("big", "IMAGE_CLASSIFICATION", dataset_path=str(path))

    assert parse_form(server.last("POST", "/fake-s3/bucket"))["file"] == (data, "big.bin")


def test_refused_presigned_upload_says_why(server, csv_file, monkeypatch):
    s3_error = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>EntityTooLarge</Code>"
                b"<Message>Your proposed upload exceeds the maximum allowed size</Message></Error>")
    presigned_routes(server, s3_status=400, s3_body=s3_error)
    client = Client(base_url=server.url, token="t")
    monkeypatch.setattr(client, "max_direct_upload_bytes", 10)

    with pytest.raises(UploadFailedError) as info:
        client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path=str(csv_file))

    error = info.value
    assert error.status_code == 400 and error.code == "EntityTooLarge"
    assert "exceeds the maximum allowed size" in str(error)
    assert "d-1" in str(error)
    assert ("POST", "/datasets/d-1/complete") not in server.paths()


def test_unreachable_storage_url_names_it(server, csv_file, monkeypatch, closed_port):
    server.route("POST", "/datasets/uploads", 201, {
        "dataset": {**DATASET, "status": "UPLOADING"},
        "upload": {"url": f"http://127.0.0.1:{closed_port}/bucket", "fields": S3_FIELDS},
    })
    client = Client(base_url=server.url, token="t", timeout=5)
    monkeypatch.setattr(client, "max_direct_upload_bytes", 10)
    with pytest.raises(ConnectionFailedError, match=f"127.0.0.1:{closed_port}/bucket"):
        client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path=str(csv_file))


def test_bad_file_reported_by_complete(server, csv_file, monkeypatch):
    presigned_routes(server)
    server.route("POST", "/datasets/d-1/complete", 422,
                 {"error": {"code": "unprocessable", "message": "no column 'species' in the CSV header"}})
    client = Client(base_url=server.url, token="t")
    monkeypatch.setattr(client, "max_direct_upload_bytes", 10)
    with pytest.raises(UnprocessableError, match="no column 'species'"):
        client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path=str(csv_file))


def test_direct_upload_refused_as_too_large_falls_back_to_presigned(server, csv_file):
    server.route("POST", "/datasets", 413, {"error": {"code": "payload_too_large", "message": "use a presigned upload"}})
    presigned_routes(server)
    result = Client(base_url=server.url, token="t").create_dataset("iris", "TABULAR_CLASSIFICATION",
                                                                   dataset_path=str(csv_file))
    assert result == DATASET
    assert server.paths()[0] == ("POST", "/datasets")
    assert server.paths()[-1] == ("POST", "/datasets/d-1/complete")


def test_get_datasets_and_dataset(server):
    server.route("GET", "/datasets", 200, [DATASET])
    server.route("GET", "/datasets/d-1", 200, DATASET)
    client = Client(base_url=server.url, api_key="kk_a.b")
    assert client.get_datasets() == [DATASET]
    assert server.last().query == {}
    client.get_datasets(task="tabular_classification")
    assert server.last().query == {"task": ["TABULAR_CLASSIFICATION"]}
    assert client.get_dataset("d-1") == DATASET
