"""create_dataset's direct S3 path: a client signing as an IAM user puts a large file itself
with boto3's multipart upload at the bucket and key the handshake names (against a moto S3
server); unsigned clients, and answers without ``direct``, keep the presigned POST."""
from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kilele import Client
from kilele.errors import UploadFailedError

from unit.sdk.test_sdk_datasets import DATASET, S3_FIELDS, csv_file, presigned_routes  # noqa: F401 (fixture)

MiB = 1024 * 1024
BUCKET = "kilele-test-data"
KEY = "direct/alice/datasets/d-1/data"


@pytest.fixture
def s3_url():
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


def aws_session():
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def direct_routes(server, s3_url, bucket=BUCKET):
    presigned_routes(server)  # the presigned form is always in the answer too
    server.route("POST", "/datasets/uploads", 201, {
        "dataset": {**DATASET, "status": "UPLOADING", "size_bytes": 0},
        "upload": {"url": f"{server.url}/fake-s3/bucket", "fields": S3_FIELDS},
        "direct": {"bucket": bucket, "key": KEY, "endpoint_url": s3_url},
    })


def test_a_signed_client_uploads_in_parts_straight_to_s3(server, s3_url, tmp_path):
    s3 = aws_session().client("s3", endpoint_url=s3_url)
    s3.create_bucket(Bucket=BUCKET)
    data = bytes(range(256)) * (11 * MiB // 256)  # 11 MiB: three 5 MiB parts at most
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    direct_routes(server, s3_url)
    client = Client(base_url=server.url, aws_session=aws_session())
    client.max_direct_upload_bytes = 1024
    client.transfer.multipart_threshold = client.transfer.multipart_chunksize = 5 * MiB
    client.transfer.progress = False

    assert client.create_dataset("big", "IMAGE_CLASSIFICATION", dataset_path=str(path)) == DATASET

    assert server.paths() == [("POST", "/datasets/uploads"), ("POST", "/datasets/d-1/complete")]
    head = s3.head_object(Bucket=BUCKET, Key=KEY)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == data
    # The API calls were signed; S3's were boto3's own.
    assert server.requests[0].headers["authorization"].startswith("AWS4-HMAC-SHA256")


def test_an_unsigned_client_keeps_the_presigned_post(server, s3_url, csv_file):
    direct_routes(server, s3_url)
    client = Client(base_url=server.url, token="t")
    client.max_direct_upload_bytes = 10
    client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path=str(csv_file), target_column="species")
    assert ("POST", "/fake-s3/bucket") in server.paths()


def test_a_signed_client_without_direct_in_the_answer_posts_the_form(server, csv_file):
    presigned_routes(server)  # e.g. signed as a role: no per-user prefix, so no "direct"
    client = Client(base_url=server.url, aws_session=aws_session())
    client.max_direct_upload_bytes = 10
    client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path=str(csv_file), target_column="species")
    assert server.paths() == [("POST", "/datasets/uploads"), ("POST", "/fake-s3/bucket"),
                              ("POST", "/datasets/d-1/complete")]


def test_s3_refusing_the_upload_is_an_upload_error_with_its_code(server, s3_url, csv_file):
    direct_routes(server, s3_url, bucket="no-such-bucket")
    client = Client(base_url=server.url, aws_session=aws_session())
    client.max_direct_upload_bytes = 10
    client.transfer.progress = False
    with pytest.raises(UploadFailedError, match="s3://no-such-bucket/.*stays UPLOADING") as raised:
        client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path=str(csv_file))
    assert raised.value.code == "NoSuchBucket"
    assert server.paths() == [("POST", "/datasets/uploads")]  # never completed
