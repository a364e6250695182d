"""The local S3 gate, the twin of IAM's direct-transfer grant: in front of a moto S3 server, each
IAM user reads and writes its own direct/<name>/ prefix of the data bucket with boto3 (ranged
and multipart), and is refused everything else, as are roles, other buckets and bad signatures."""
from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from boto3.s3.transfer import TransferConfig
from moto.server import ThreadedMotoServer

from chalicelib.local.s3_gate import S3Gate, action_of
from chalicelib.local.sigv4 import Credentials

MiB = 1024 * 1024
BUCKET = "kilele-local-data"
KEYS = {  # access key id -> (secret, ARN moto would have issued it to)
    "AKIAALICE00000000001": ("alice-secret", "arn:aws:iam::123456789012:user/alice"),
    "AKIABOB0000000000002": ("bob-secret", "arn:aws:iam::123456789012:user/bob"),
    "ASIAROLE000000000003": ("role-secret", "arn:aws:sts::123456789012:assumed-role/ml/alice"),
}
SMALL_PARTS = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)


def credentials_of(access_key_id: str):
    if access_key_id not in KEYS:
        return None
    secret, arn = KEYS[access_key_id]
    return Credentials(secret, arn)


@pytest.fixture(scope="module")
def gate():
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    upstream = f"http://{host}:{port}"
    admin = boto3.client("s3", endpoint_url=upstream, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    admin.create_bucket(Bucket=BUCKET)
    admin.create_bucket(Bucket="another-bucket")
    gate = S3Gate(upstream, BUCKET, credentials_of)
    gate.start()
    yield gate, admin
    gate.stop()
    moto.stop()


def s3_as(gate_url: str, access_key_id: str, secret: str | None = None):
    return boto3.client("s3", endpoint_url=gate_url, region_name="us-east-1", aws_access_key_id=access_key_id,
                        aws_secret_access_key=secret or KEYS[access_key_id][0],
                        config=Config(retries={"max_attempts": 1}))


def code_of(call) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"]


def test_a_user_moves_large_files_in_parts_under_its_own_prefix(gate, tmp_path):
    gate, admin = gate
    alice = s3_as(gate.url, "AKIAALICE00000000001")
    data = bytes(range(256)) * (11 * MiB // 256)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    alice.upload_file(str(source), BUCKET, "direct/alice/exports/e1/bundle.tar.gz", Config=SMALL_PARTS)
    head = admin.head_object(Bucket=BUCKET, Key="direct/alice/exports/e1/bundle.tar.gz")
    assert head["ETag"].strip('"').endswith("-3")  # three parts went through the gate

    target = tmp_path / "down.bin"
    alice.download_file(BUCKET, "direct/alice/exports/e1/bundle.tar.gz", str(target), Config=SMALL_PARTS)
    assert target.read_bytes() == data
    assert alice.get_object(Bucket=BUCKET, Key="direct/alice/exports/e1/bundle.tar.gz",
                            Range="bytes=0-9")["Body"].read() == data[:10]


def test_another_user_a_role_and_other_keys_are_refused(gate, tmp_path):
    gate, admin = gate
    admin.put_object(Bucket=BUCKET, Key="direct/alice/exports/e2/bundle.tar.gz", Body=b"alice's")
    admin.put_object(Bucket=BUCKET, Key="exports/e3/bundle.tar.gz", Body=b"anyone's")
    admin.put_object(Bucket="another-bucket", Key="direct/bob/x", Body=b"x")
    bob = s3_as(gate.url, "AKIABOB0000000000002")
    role = s3_as(gate.url, "ASIAROLE000000000003")

    assert code_of(lambda: bob.get_object(Bucket=BUCKET, Key="direct/alice/exports/e2/bundle.tar.gz")) == "AccessDenied"
    assert code_of(lambda: bob.head_object(Bucket=BUCKET, Key="direct/alice/exports/e2/bundle.tar.gz")) == "403"
    assert code_of(lambda: bob.put_object(Bucket=BUCKET, Key="direct/alice/x", Body=b"x")) == "AccessDenied"
    assert code_of(lambda: bob.get_object(Bucket=BUCKET, Key="exports/e3/bundle.tar.gz")) == "AccessDenied"
    assert code_of(lambda: bob.get_object(Bucket="another-bucket", Key="direct/bob/x")) == "AccessDenied"
    assert code_of(lambda: bob.list_objects_v2(Bucket=BUCKET, Prefix="direct/bob/")) == "AccessDenied"
    assert code_of(lambda: bob.delete_object(Bucket=BUCKET, Key="direct/bob/x")) == "AccessDenied"
    assert code_of(lambda: bob.copy_object(Bucket=BUCKET, Key="direct/bob/copy",
                                           CopySource={"Bucket": BUCKET, "Key": "direct/alice/x"})) == "AccessDenied"
    # a role's session has no aws:username: no prefix of its own
    assert code_of(lambda: role.get_object(Bucket=BUCKET, Key="direct/alice/exports/e2/bundle.tar.gz")) == "AccessDenied"
    # a wrong secret, an unknown key
    wrong = s3_as(gate.url, "AKIAALICE00000000001", secret="not-alice-secret")
    assert code_of(lambda: wrong.get_object(Bucket=BUCKET, Key="direct/alice/exports/e2/bundle.tar.gz")) \
        == "SignatureDoesNotMatch"
    stranger = s3_as(gate.url, "AKIASTRANGER00000004", secret="s")
    assert code_of(lambda: stranger.get_object(Bucket=BUCKET, Key="direct/alice/exports/e2/bundle.tar.gz")) \
        == "SignatureDoesNotMatch"
    # and what was refused is unchanged
    assert admin.get_object(Bucket=BUCKET, Key="direct/alice/exports/e2/bundle.tar.gz")["Body"].read() == b"alice's"


def test_a_user_name_that_is_a_prefix_of_another_reads_only_its_own(gate):
    gate, admin = gate
    admin.put_object(Bucket=BUCKET, Key="direct/alice2/secret", Body=b"alice2's")
    alice = s3_as(gate.url, "AKIAALICE00000000001")
    assert code_of(lambda: alice.get_object(Bucket=BUCKET, Key="direct/alice2/secret")) == "AccessDenied"


@pytest.mark.parametrize("method, query, headers, action", [
    ("GET", {}, {}, "s3:GetObject"),
    ("HEAD", {}, {}, "s3:GetObject"),
    ("GET", {"uploadId": ["u"]}, {}, "s3:ListMultipartUploadParts"),
    ("PUT", {}, {}, "s3:PutObject"),
    ("POST", {"uploads": [""]}, {}, "s3:PutObject"),
    ("PUT", {"partNumber": ["1"], "uploadId": ["u"]}, {}, "s3:PutObject"),
    ("POST", {"uploadId": ["u"]}, {}, "s3:PutObject"),
    ("DELETE", {"uploadId": ["u"]}, {}, "s3:AbortMultipartUpload"),
    ("DELETE", {}, {}, None),
    ("POST", {}, {}, None),
    ("GET", {"tagging": [""]}, {}, None),
    ("PUT", {"acl": [""]}, {}, None),
    ("PUT", {}, {"x-amz-copy-source": "b/k"}, None),
])
def test_each_s3_operation_needs_its_iam_action(method, query, headers, action):
    assert action_of(method, query, headers) == action
