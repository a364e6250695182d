"""The SDK on the caller's AWS credentials: requests signed with SigV4 act as the Kilele user
an admin linked the IAM user or role to, against the local stack as against a deployed one
(its gateway checks the signature with the keys moto issued)."""
from __future__ import annotations

import uuid

import boto3
import pytest
import requests

from kilele import Client
from kilele.errors import KileleError

from .conftest import MOTO_ONLY

# The gateway checks SigV4 with the secrets of the keys the moto child issued (IAM_CREDENTIALS_PATH);
# an external emulator's keys are unknown to it, so IAM-signed calls are refused there (docs/localstack.md).
pytestmark = [pytest.mark.slow, MOTO_ONLY]


def _moto(stack, service: str):
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def iam_user(stack):
    name = f"alice-{uuid.uuid4().hex[:8]}"
    iam = _moto(stack, "iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                              region_name="us-east-1")


def test_a_linked_iam_user_signs_its_requests_and_acts_as_its_user(stack, admin, make_user, iam_user):
    arn, session = iam_user
    developer = make_user("MODEL_DEVELOPER").get_current_user()["email"]
    signed = Client(base_url=stack.url, aws_session=session)
    with pytest.raises(KileleError) as refused:
        signed.get_current_user() or signed._request("GET", "/users/me")
    assert refused.value.status_code == 401 and "linked to no Kilele user" in refused.value.message

    assert admin.link_iam_principal(developer, arn)["iam_principals"] == [arn]
    me = signed.get_current_user()
    assert me["email"] == developer and me["user_type"] == "MODEL_DEVELOPER"
    assert signed.get_datasets() == []  # an ordinary call, as that user

    admin.unlink_iam_principal(developer, arn)
    assert signed.get_current_user() is None  # 401: not logged in, as seed 001 says


def test_an_assumed_role_acts_as_the_user_its_role_is_linked_to(stack, admin, make_user):
    iam, sts = _moto(stack, "iam"), _moto(stack, "sts")
    role = iam.create_role(RoleName=f"ml-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    assumed = sts.assume_role(RoleArn=role, RoleSessionName="laptop")
    creds = assumed["Credentials"]
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"], region_name="us-east-1")
    developer = make_user("APP_DEVELOPER").get_current_user()["email"]
    admin.link_iam_principal(developer, assumed["AssumedRoleUser"]["Arn"])  # the session ARN links its role
    assert Client(base_url=stack.url, aws_session=session).get_current_user()["email"] == developer


def test_a_bad_signature_is_refused_before_the_app(stack, admin, make_user, iam_user):
    arn, session = iam_user
    developer = make_user("MODEL_DEVELOPER").get_current_user()["email"]
    admin.link_iam_principal(developer, arn)
    wrong = boto3.Session(aws_access_key_id=session.get_credentials().access_key, aws_secret_access_key="x" * 40,
                          region_name="us-east-1")
    with pytest.raises(KileleError) as refused:
        Client(base_url=stack.url, aws_session=wrong)._request("GET", "/users/me")
    assert refused.value.status_code == 403 and "signature" in refused.value.message
    # A signature replayed onto another request (another path) does not hold either.
    signed = Client(base_url=stack.url, aws_session=session)
    prepared = signed._session.prepare_request(requests.Request("GET", f"{stack.url}/users/me", auth=signed._signer))
    replay = requests.get(f"{stack.url}/datasets", headers={k: v for k, v in prepared.headers.items()
                                                            if k.lower().startswith(("authorization", "x-amz"))},
                          timeout=10)
    assert replay.status_code == 403, replay.text
