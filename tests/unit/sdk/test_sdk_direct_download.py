"""export_bundle's direct S3 path: a client signing as an IAM user reads the bundle itself with
boto3's managed download (ranged GETs) from the bucket and key the API names; when S3 refuses its
credentials it falls back to the presigned URL with a warning; unsigned clients always take the
URL; other refusals are errors that leave no partial file."""
from __future__ import annotations

import os

import boto3
import pytest
from moto.server import ThreadedMotoServer

from chalicelib.local.s3_gate import S3Gate
from chalicelib.local.sigv4 import Credentials
from kilele import Client
from kilele.errors import DownloadFailedError

from unit.sdk.test_sdk_serving import MANIFEST, bundle_bytes

MiB = 1024 * 1024
BUCKET = "kilele-test-data"
KEY = "direct/alice/exports/e-1/bundle.tar.gz"
ALICE = ("AKIAALICE00000000001", "alice-secret", "arn:aws:iam::123456789012:user/alice")
BOB = ("AKIABOB0000000000002", "bob-secret", "arn:aws:iam::123456789012:user/bob")


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server with the bundle at KEY, behind the local S3 gate (which knows alice and bob)."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    upstream = f"http://{host}:{port}"
    known = {akid: Credentials(secret, arn) for akid, secret, arn in (ALICE, BOB)}
    gate = S3Gate(upstream, BUCKET, known.get)
    gate.start()
    admin = boto3.client("s3", endpoint_url=upstream, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    admin.create_bucket(Bucket=BUCKET)
    yield gate.url, admin
    gate.stop()
    moto.stop()


def session_of(who) -> boto3.Session:
    return boto3.Session(aws_access_key_id=who[0], aws_secret_access_key=who[1], region_name="us-east-1")


def serve(server, endpoint_url, data_at_url: bytes, key: str = KEY) -> None:
    server.route("POST", "/bundles", 201, {
        "url": f"{server.url}/storage/{key}?X-Amz-Signature=abc", "manifest": MANIFEST,
        "direct": {"bucket": BUCKET, "key": key, "endpoint_url": endpoint_url},
    })
    server.route("GET", f"/storage/{key}", 200, data_at_url)


def test_a_signed_iam_user_reads_its_bundle_straight_from_s3_in_ranges(server, s3, tmp_path):
    endpoint, admin = s3
    data = bundle_bytes(extra={"model.bin": os.urandom(11 * MiB)})  # random: gzip keeps it 11 MiB
    admin.put_object(Bucket=BUCKET, Key=KEY, Body=data)
    serve(server, endpoint, b"not this")
    session = session_of(ALICE)
    ranges: list[str] = []
    session.events.register("provide-client-params.s3.GetObject", lambda params, **_: ranges.append(params.get("Range")))
    client = Client(base_url=server.url, aws_session=session)
    client.transfer.multipart_threshold = client.transfer.multipart_chunksize = 5 * MiB
    client.transfer.progress = False

    out = tmp_path / "app.tar.gz"
    result = client.export_bundle("iris_app", out_path=str(out))

    assert result == {"path": str(out), "manifest": MANIFEST}
    assert out.read_bytes() == data
    assert len(ranges) == -(-len(data) // (5 * MiB)) >= 3 and all(ranges)  # parallel ranged GETs of 5 MiB
    assert server.paths() == [("POST", "/bundles")]  # the presigned URL was not used
    assert [p.name for p in tmp_path.iterdir()] == ["app.tar.gz"]


def test_refused_credentials_fall_back_to_the_presigned_url(server, s3, tmp_path):
    endpoint, admin = s3
    admin.put_object(Bucket=BUCKET, Key=KEY, Body=b"alice's bundle")
    serve(server, endpoint, b"through the URL")
    client = Client(base_url=server.url, aws_session=session_of(BOB))  # not alice: the gate says AccessDenied
    client.transfer.progress = False
    out = tmp_path / "app.tar.gz"

    with pytest.warns(UserWarning, match="AccessDenied|403"):
        client.export_bundle("iris_app", out_path=str(out))

    assert out.read_bytes() == b"through the URL"
    assert server.paths()[-1] == ("GET", f"/storage/{KEY}")
    assert [p.name for p in tmp_path.iterdir()] == ["app.tar.gz"]


def test_an_unsigned_client_takes_the_url_even_with_a_direct_answer(server, s3, tmp_path):
    endpoint, admin = s3
    admin.put_object(Bucket=BUCKET, Key=KEY, Body=b"alice's bundle")
    serve(server, endpoint, b"through the URL")
    client = Client(base_url=server.url, api_key="kk_a.b")
    out = tmp_path / "app.tar.gz"
    client.export_bundle("iris_app", out_path=str(out))
    assert out.read_bytes() == b"through the URL"


def test_a_missing_object_is_an_error_and_leaves_no_file(server, s3, tmp_path):
    endpoint, _ = s3
    serve(server, endpoint, b"unused", key="direct/alice/exports/gone/bundle.tar.gz")
    client = Client(base_url=server.url, aws_session=session_of(ALICE))
    client.transfer.progress = False
    with pytest.raises(DownloadFailedError) as failed:
        client.export_bundle("iris_app", out_path=str(tmp_path / "app.tar.gz"))
    assert failed.value.status_code == 404
    assert list(tmp_path.iterdir()) == []


def test_trial_parameters_and_a_stress_report_come_straight_from_s3_too(server, s3, tmp_path):
    import numpy as np

    from kilele import StressTestJob
    from kilele.model import serialize_params

    endpoint, admin = s3
    params = serialize_params({"w": np.arange(4.0)})
    admin.put_object(Bucket=BUCKET, Key="direct/alice/trials/t-1/params.npz", Body=params)
    admin.put_object(Bucket=BUCKET, Key="direct/alice/stress-tests/j-1/report.html", Body=b"<html>r</html>")
    server.route("GET", "/trials/t-1/parameters", 200, {
        "trial_id": "t-1", "format": "npz", "url": f"{server.url}/storage/params?X-Amz-Signature=abc",
        "direct": {"bucket": BUCKET, "key": "direct/alice/trials/t-1/params.npz", "endpoint_url": endpoint}})
    server.route("GET", "/stress-tests/j-1/report", 200, {
        "url": f"{server.url}/storage/report?X-Amz-Signature=abc",
        "direct": {"bucket": BUCKET, "key": "direct/alice/stress-tests/j-1/report.html", "endpoint_url": endpoint}})
    client = Client(base_url=server.url, aws_session=session_of(ALICE))
    client.transfer.progress = False

    assert client.get_trial_parameters("t-1")["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    target = tmp_path / "report.html"
    assert StressTestJob(client, "j-1").get_report(str(target)) == str(target)
    assert target.read_bytes() == b"<html>r</html>"
    assert ("GET", "/storage/params") not in server.paths() and ("GET", "/storage/report") not in server.paths()
