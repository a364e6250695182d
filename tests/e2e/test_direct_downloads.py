"""Bundles straight from S3 on the local stack (issue 13 item 11): a client signing as a linked
IAM user exports an app version's bundle, which the API writes under that user's direct/<name>/
prefix, and reads it itself with boto3's managed download through the stack's S3 gate (the local
twin of the direct-transfer policy); another IAM user's credentials are refused that key."""
from __future__ import annotations

import tarfile
import uuid
import warnings

import boto3
import pytest
from botocore.exceptions import ClientError

from kilele import Client
from kilele.archive import safe_extract

from .conftest import EXAMPLES, MOTO_ONLY, developers

# The S3 gate checks signatures with the keys the moto child issued; an external emulator has none.
pytestmark = [pytest.mark.slow, MOTO_ONLY]


def _iam_user(stack, prefix: str):
    iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, arn, boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                    region_name="us-east-1")


def test_an_iam_user_downloads_its_bundle_directly_and_another_is_refused(stack, admin, tmp_path):
    clients = developers(stack)
    app_dev = clients["APP_DEVELOPER"]
    model = clients["MODEL_DEVELOPER"].create_model(
        name=f"tree-{uuid.uuid4().hex[:8]}", task="TABULAR_CLASSIFICATION",
        model_file_path=str(EXAMPLES / "models" / "sk_decision_tree.py"), model_class="SkDecisionTree",
        dependencies={"scikit-learn": "1.9.1"}, access_right="PUBLIC")["id"]
    data = EXAMPLES / "datasets"
    train = app_dev.create_dataset("iris_train", "TABULAR_CLASSIFICATION", dataset_path=str(data / "iris_train.csv"))
    val = app_dev.create_dataset("iris_val", "TABULAR_CLASSIFICATION", dataset_path=str(data / "iris_val.csv"))
    app = f"iris-{uuid.uuid4().hex[:6]}"
    app_dev.create_train_job(app=app, task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                             val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": 1}, models=[model])
    assert app_dev.wait_for_train_job(app, timeout=240)["status"] == "STOPPED"

    name, arn, session = _iam_user(stack, "owner")
    admin.link_iam_principal(app_dev.get_current_user()["email"], arn)
    gets: list[str] = []
    session.events.register("provide-client-params.s3.GetObject", lambda params, **_: gets.append(params["Key"]))
    signed = Client(base_url=stack.url, aws_session=session)
    signed.transfer.progress = False

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a refused direct read would warn and fall back to the URL
        exported = signed.export_bundle(app, out_path=str(tmp_path / "bundle.tar.gz"))

    [key] = set(gets)  # read with the IAM user's own credentials, from its own prefix
    assert key.startswith(f"direct/{name}/exports/") and key.endswith("/bundle.tar.gz")
    with tarfile.open(exported["path"]) as archive:
        safe_extract(archive, tmp_path / "bundle")
    assert (tmp_path / "bundle" / "kilele-bundle.json").is_file()
    assert exported["manifest"]["app"] == app

    # Another IAM user (linked to a Kilele user or not) cannot read that key at the same endpoint.
    _, _, other = _iam_user(stack, "other")
    direct = signed._request("POST", "/bundles", json={"app": app, "app_version": -1})["direct"]
    assert direct["endpoint_url"] and f":{stack.moto_port}" not in direct["endpoint_url"]  # the gate, not moto
    with pytest.raises(ClientError) as refused:
        other.client("s3", endpoint_url=direct["endpoint_url"]).get_object(Bucket=direct["bucket"], Key=key)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
