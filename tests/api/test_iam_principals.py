"""IAM principals as users: an admin links an IAM user or role to a Kilele user, and a request
that API Gateway's IAM authorization let through (``requestContext.identity.userArn``) acts as
that user. Headers can never claim a principal: only the request context, which API Gateway
(or the local gateway, after checking the SigV4 signature) fills."""
from __future__ import annotations

import json
from typing import Any, Optional

import pytest
from api_support import assert_error

ROLE = "arn:aws:iam::123456789012:role/ml-engineers"
SESSION = "arn:aws:sts::123456789012:assumed-role/ml-engineers/alice-laptop"


def through_iam_api(path: str, user_arn: Optional[str], method: str = "GET", headers: Optional[dict] = None) -> Any:
    """The Lambda invoked as API Gateway invokes it for a method with IAM authorization."""
    from app import app

    route = path.split("?")[0]
    event = {
        "resource": route, "path": route, "httpMethod": method,
        "headers": {"content-type": "application/json", **(headers or {})},
        "multiValueHeaders": None, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": route, "httpMethod": method, "path": f"/api{route}", "stage": "api",
                           "identity": {"sourceIp": "203.0.113.9", "userArn": user_arn,
                                        "accountId": "123456789012", "caller": "AROAEXAMPLE:alice-laptop"}},
    }
    response = app(event, None)
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def developer(make_user):
    return make_user("MODEL_DEVELOPER", email="dev@example.com")


def test_an_assumed_role_session_acts_as_the_user_its_role_is_linked_to(superadmin, developer):
    linked = superadmin.call("POST", "/users/iam-principals", {"email": "dev@example.com", "principal_arn": SESSION})
    assert linked.status_code == 200, linked.json_body
    assert linked.json_body["iam_principals"] == [ROLE]  # the role, not the one session
    status, body = through_iam_api("/users/me", SESSION)
    assert status == 200 and body["email"] == "dev@example.com" and body["user_type"] == "MODEL_DEVELOPER"
    status, body = through_iam_api("/users/me", "arn:aws:sts::123456789012:assumed-role/ml-engineers/bob")
    assert status == 200 and body["email"] == "dev@example.com"


def test_an_unlinked_or_unlinkable_principal_is_refused_with_the_reason(superadmin, developer):
    status, body = through_iam_api("/users/me", "arn:aws:iam::123456789012:user/nobody")
    assert status == 401 and "linked to no Kilele user" in body["error"]["message"]
    status, body = through_iam_api("/users/me", "arn:aws:iam::123456789012:root")
    assert status == 401 and "only IAM users and roles" in body["error"]["message"]
    status, body = through_iam_api("/users/me", None)
    assert status == 401


def test_a_header_cannot_claim_a_principal(client, superadmin, developer):
    superadmin.call("POST", "/users/iam-principals", {"email": "dev@example.com", "principal_arn": ROLE})
    for header in ("x-amz-user-arn", "useranr", "x-kilele-iam-principal"):
        assert_error(client.anonymous().call("GET", "/users/me", headers={header: ROLE}), 401, "unauthenticated")


def test_unlinking_stops_the_principal_and_a_ban_stops_it_too(superadmin, developer):
    superadmin.call("POST", "/users/iam-principals", {"email": "dev@example.com", "principal_arn": ROLE})
    assert through_iam_api("/users/me", SESSION)[0] == 200
    unlinked = superadmin.call("POST", "/users/iam-principals/unlink", {"email": "dev@example.com", "principal_arn": ROLE})
    assert unlinked.status_code == 200 and unlinked.json_body["iam_principals"] == []
    assert through_iam_api("/users/me", SESSION)[0] == 401
    superadmin.call("POST", "/users/iam-principals", {"email": "dev@example.com", "principal_arn": ROLE})
    superadmin.call("POST", "/users/ban", {"email": "dev@example.com"})
    status, body = through_iam_api("/users/me", SESSION)
    assert status == 401 and "banned" in body["error"]["message"]


def test_linking_is_for_admins_and_a_principal_belongs_to_one_user(superadmin, developer, make_user):
    assert_error(developer.call("POST", "/users/iam-principals", {"email": "dev@example.com", "principal_arn": ROLE}),
                 403, "forbidden")
    make_user("APP_DEVELOPER", email="app@example.com")
    assert superadmin.call("POST", "/users/iam-principals", {"email": "dev@example.com", "principal_arn": ROLE}).status_code == 200
    assert_error(superadmin.call("POST", "/users/iam-principals", {"email": "app@example.com", "principal_arn": SESSION}),
                 409, "conflict", "already linked")
    assert_error(superadmin.call("POST", "/users/iam-principals", {"email": "dev@example.com", "principal_arn": "alice"}),
                 400, "invalid_input", "principal_arn")
    assert_error(superadmin.call("POST", "/users/iam-principals",
                                 {"email": "ghost@example.com", "principal_arn": "arn:aws:iam::123456789012:user/ghost"}),
                 404, "not_found")
    assert_error(superadmin.call("POST", "/users/iam-principals/unlink",
                                 {"email": "app@example.com", "principal_arn": ROLE}), 404, "not_found")
