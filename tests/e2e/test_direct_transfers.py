"""Large files straight to S3 on the local stack (issue 13 item 11): a client signing as a
linked IAM user uploads a dataset above the direct-upload size itself, as a multipart upload
into its own direct/<user name>/ prefix of the stack's moto S3, and the dataset becomes READY."""
from __future__ import annotations

import uuid

import boto3
import pytest

from kilele import Client

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def test_a_signed_iam_user_uploads_a_large_dataset_in_parts(stack, admin, make_user, tmp_path):
    moto = dict(endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                aws_access_key_id="testing", aws_secret_access_key="testing")
    name = f"bulk-{uuid.uuid4().hex[:8]}"
    iam = boto3.client("iam", **moto)
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    session = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                            region_name="us-east-1")
    developer = make_user("MODEL_DEVELOPER").get_current_user()["email"]
    admin.link_iam_principal(developer, arn)

    rows = [f"{i},{i * 7 % 1000},{'ab'[i % 2]}\n" for i in range(700_000)]
    path = tmp_path / "big.csv"
    path.write_text("x1,x2,target\n" + "".join(rows))
    size = path.stat().st_size
    assert size > 6 * MiB
    client = Client(base_url=stack.url, aws_session=session)
    client.transfer.multipart_threshold = client.transfer.multipart_chunksize = 5 * MiB  # S3's smallest part
    client.transfer.progress = False

    dataset = client.create_dataset("big", "TABULAR_CLASSIFICATION", dataset_path=str(path), target_column="target")

    assert dataset["status"] == "READY" and dataset["size_bytes"] == size
    s3 = boto3.client("s3", **moto)
    [bucket] = [b["Name"] for b in s3.list_buckets()["Buckets"]
                if s3.list_objects_v2(Bucket=b["Name"], Prefix=f"direct/{name}/").get("KeyCount")]
    [obj] = s3.list_objects_v2(Bucket=bucket, Prefix=f"direct/{name}/")["Contents"]
    assert obj["Key"] == f"direct/{name}/datasets/{dataset['id']}/data"
    assert obj["ETag"].strip('"').endswith("-2")  # a multipart upload of two parts
