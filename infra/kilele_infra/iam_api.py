"""The API's second way in: the same routes behind API Gateway's IAM authorization (issue 13).

Callers sign their requests with SigV4 (the SDK's ``Client(aws_session=...)`` or
``Client.from_stack``); API Gateway checks the signature and hands the app the caller's ARN
(``requestContext.identity.userArn``), which an admin has linked to a Kilele user
(``kilele users link-iam-principal``). A method has one authorization type, so session tokens
and API keys keep the first REST API and signed requests get this one, on the same function.

It is a nested stack: one REST API of ~90 routes is ~330 CloudFormation resources, and two of
them would put the stack over CloudFormation's 500-resource limit.
"""
from __future__ import annotations

from aws_cdk import NestedStack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from .api import build_rest_api


class IamApi(NestedStack):
    """Owns the REST API ``kilele-{stage}-iam`` (every method ``AWS_IAM``), its WAF association
    with the stack's web ACL, and two managed policies for the IAM users and roles that call
    it: ``kilele-{stage}-api-invoke`` (every route) and ``kilele-{stage}-api-read-only`` (GET
    routes). What a caller may do inside is still its linked Kilele user's type.

    Exposes ``rest_api`` and ``invoke_policies`` (name -> policy)."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, function: lambda_.IFunction,
                 web_acl_arn: str) -> None:
        super().__init__(scope, construct_id, description=f"Kilele {stage}: the API behind IAM authorization")
        self.rest_api = build_rest_api(self, stage, function, iam_authorization=True)
        association = wafv2.CfnWebACLAssociation(
            self, "ApiStageAssociation", resource_arn=self.rest_api.deployment_stage.stage_arn, web_acl_arn=web_acl_arn)
        association.node.add_dependency(self.rest_api.deployment_stage)
        arn = self.rest_api.arn_for_execute_api
        self.invoke_policies = {
            "invoke": iam.ManagedPolicy(
                self, "InvokePolicy", managed_policy_name=f"kilele-{stage}-api-invoke",
                description="Call every route of the Kilele IAM API, as the Kilele user the principal is linked to",
                statements=[iam.PolicyStatement(actions=["execute-api:Invoke"], resources=[arn("*", "/*", stage)])],
            ),
            "read-only": iam.ManagedPolicy(
                self, "ReadOnlyInvokePolicy", managed_policy_name=f"kilele-{stage}-api-read-only",
                description="Call only the GET routes of the Kilele IAM API",
                statements=[iam.PolicyStatement(actions=["execute-api:Invoke"], resources=[arn("GET", "/*", stage)])],
            ),
        }
