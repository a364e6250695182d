"""kilele[sagemaker]: an app version as a SageMaker Python SDK ``Model``, built without calling
AWS (the API is a fake server; the boto3 session has made-up credentials; a copy to the user's
bucket goes to moto): the bundle in S3 as model data, the image the API names, the inference
image's environment, the given role, network isolation and a JSON predictor."""
from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

sagemaker = pytest.importorskip("sagemaker", reason="kilele[sagemaker] is in requirements-dev.txt; CI installs it")
from sagemaker.model import Model  # noqa: E402

from kilele import Client  # noqa: E402
from kilele.errors import KileleError  # noqa: E402
from kilele.sagemaker_model import sagemaker_model  # noqa: E402

from unit.sdk.test_sdk_serving import MANIFEST, bundle_bytes  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/my-sagemaker-role"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/kilele-prod-inference:3f2a9c"
KEY = "direct/alice/exports/e-1/bundle.tar.gz"


def fake_session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="AKIAFAKE000000000000", aws_secret_access_key="fake",
                         region_name="eu-west-1")


def serve(server, direct=True, image_uri=IMAGE, data=b"bundle") -> None:
    server.route("POST", "/bundles", 201, {
        "url": f"{server.url}/storage/bundle.tar.gz?X-Amz-Signature=abc", "manifest": MANIFEST,
        "direct": {"bucket": "kilele-prod-data", "key": KEY, "endpoint_url": None} if direct else None,
        "image_uri": image_uri,
    })
    server.route("GET", "/storage/bundle.tar.gz", 200, data)


def test_a_signed_client_gets_a_model_of_the_version_in_its_own_prefix(server):
    serve(server)
    client = Client(base_url=server.url, aws_session=fake_session())
    model = sagemaker_model(client, "iris_app", 3, role=ROLE, env={"KILELE_MAX_BATCH_SIZE": "64"})

    assert isinstance(model, Model)
    assert server.last("POST", "/bundles").json() == {"app": "iris_app", "app_version": 3}
    assert model.model_data == f"s3://kilele-prod-data/{KEY}"
    assert model.image_uri == IMAGE and model.role == ROLE
    assert model.env == {"KILELE_BUNDLE": "/opt/ml/model", "KILELE_MAX_BATCH_SIZE": "64"}
    assert model.enable_network_isolation() is True
    assert model.sagemaker_session.boto_session is client.aws_session
    assert model.sagemaker_session.boto_region_name == "eu-west-1"
    # what CreateModel would be sent, without sending it
    container = model.prepare_container_def(instance_type="ml.c5.large")
    assert container["Image"] == IMAGE and container["ModelDataUrl"] == f"s3://kilele-prod-data/{KEY}"
    assert container["Environment"]["KILELE_BUNDLE"] == "/opt/ml/model"
    predictor = model.predictor_cls("kilele-iris", sagemaker_session=model.sagemaker_session)
    assert predictor.content_type == "application/json" and predictor.accept == ("application/json",)


def test_an_explicit_image_wins_and_without_any_image_it_says_what_to_give(server):
    serve(server, image_uri=None)
    client = Client(base_url=server.url, aws_session=fake_session())
    gpu = IMAGE.replace("inference", "inference-gpu")
    assert sagemaker_model(client, "iris_app", role=ROLE, image_uri=gpu).image_uri == gpu
    with pytest.raises(KileleError) as missing:
        sagemaker_model(client, "iris_app", role=ROLE)
    assert missing.value.code == "no_image" and "image_uri=" in missing.value.message


def test_an_unsigned_client_must_name_a_bucket_of_its_own(server):
    serve(server, direct=False)
    with pytest.raises(KileleError) as refused:
        sagemaker_model(Client(base_url=server.url, api_key="kk_a.b"), "iris_app", role=ROLE)
    assert refused.value.code == "no_model_data" and "upload_to" in refused.value.message


@mock_aws
def test_upload_to_copies_the_bundle_to_the_users_bucket(server):
    data = bundle_bytes()
    serve(server, direct=False, data=data)
    session = fake_session()
    session.client("s3").create_bucket(Bucket="my-models", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    client = Client(base_url=server.url, api_key="kk_a.b", aws_session=session, sign_requests=False)
    client.transfer.progress = False

    model = sagemaker_model(client, "iris_app", 3, role=ROLE, upload_to="s3://my-models/kilele/")

    assert model.model_data == "s3://my-models/kilele/iris_app-v3.tar.gz"
    stored = session.client("s3").get_object(Bucket="my-models", Key="kilele/iris_app-v3.tar.gz")["Body"].read()
    assert stored == data  # through the presigned URL (no direct key for an unsigned client)
    with pytest.raises(ValueError):
        sagemaker_model(client, "iris_app", 3, role=ROLE, upload_to="my-models/kilele")
