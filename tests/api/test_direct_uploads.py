"""The dataset upload handshake under moto: a request signed by an IAM user (the request
context API Gateway fills) also gets a bucket and key under ``direct/<IAM user name>/`` to put
the file with S3's own API; completing it makes the dataset READY. Other callers get ``direct: null``."""
from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

USER = "arn:aws:iam::123456789012:user/team/alice"
CSV = b"x1,x2,target\n1,2,a\n3,4,b\n5,6,a\n"


def signed(method: str, path: str, user_arn: str, body: Any = None, resource: str = "",
           params: Any = None) -> tuple[int, Any]:
    """The Lambda invoked as API Gateway invokes it for a method with IAM authorization."""
    from app import app

    event = {
        "resource": resource or path, "path": path, "httpMethod": method,
        "headers": {"content-type": "application/json"}, "multiValueHeaders": None,
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": params,
        "stageVariables": None, "body": None if body is None else json.dumps(body), "isBase64Encoded": False,
        "requestContext": {"resourcePath": resource or path, "httpMethod": method, "path": f"/api{path}", "stage": "api",
                           "identity": {"sourceIp": "203.0.113.9", "userArn": user_arn,
                                        "accountId": "123456789012", "caller": "AIDAEXAMPLE"}},
    }
    response = app(event, None)
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def developer(superadmin, make_user):
    user = make_user("APP_DEVELOPER", email="dev@example.com")
    linked = superadmin.call("POST", "/users/iam-principals", {"email": "dev@example.com", "principal_arn": USER})
    assert linked.status_code == 200, linked.json_body
    return user


def test_an_iam_user_uploads_under_its_own_prefix_and_completes(developer):
    status, started = signed("POST", "/datasets/uploads", USER,
                             {"name": "big", "task": "TABULAR_CLASSIFICATION", "size_bytes": len(CSV),
                              "target_column": "target"})
    assert status == 201, started
    direct, dataset_id = started["direct"], started["dataset"]["id"]
    assert direct["key"] == f"direct/alice/datasets/{dataset_id}/data"
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=direct["bucket"], Key=direct["key"], Body=CSV)
    status, done = signed("POST", f"/datasets/{dataset_id}/complete", USER,
                          resource="/datasets/{dataset_id}/complete", params={"dataset_id": dataset_id})
    assert status == 200 and done["status"] == "READY" and done["size_bytes"] == len(CSV)


def test_a_caller_with_a_token_gets_no_direct_target(developer):
    answer = developer.call("POST", "/datasets/uploads",
                            {"name": "big", "task": "TABULAR_CLASSIFICATION", "size_bytes": 100})
    assert answer.status_code == 201 and answer.json_body["direct"] is None
