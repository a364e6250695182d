"""The API's firewall: a WAF web ACL with rate-based rules per client address, associated with the
API stage, in front of the app's own failed-login throttling (chalicelib/services/login_throttle.py).

The app counts failed logins per account and per address in DynamoDB and answers 429 with
Retry-After; WAF stops floods before they cost a Lambda invocation, a DynamoDB read or a password
hash: logins (POST .../tokens) and all requests, each per address over a 5-minute window. Blocked
requests get the API's error shape, 429 and a Retry-After."""
from __future__ import annotations

import json

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

# Requests per client address in a 5-minute window (WAF's rate-based rules count over 1 to 10 min).
LOGIN_REQUESTS_PER_5_MINUTES = 100  # far above a person's logins, far below a guessing script
REQUESTS_PER_5_MINUTES = 6000  # 20 per second sustained: the SDK polling several jobs stays under it
WINDOW_SECONDS = 300
TOO_MANY_REQUESTS_BODY = "too-many-requests"
TOO_MANY_REQUESTS = json.dumps({"error": {"code": "too_many_requests",
                                          "message": "too many requests from your address; try again later"}})


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True)


def _block_with_429() -> wafv2.CfnWebACL.RuleActionProperty:
    return wafv2.CfnWebACL.RuleActionProperty(block=wafv2.CfnWebACL.BlockActionProperty(
        custom_response=wafv2.CfnWebACL.CustomResponseProperty(
            response_code=429, custom_response_body_key=TOO_MANY_REQUESTS_BODY,
            response_headers=[wafv2.CfnWebACL.CustomHTTPHeaderProperty(name="Retry-After", value=str(WINDOW_SECONDS))],
        )))


def _rate_rule(name: str, priority: int, limit: int, scope_down: "wafv2.CfnWebACL.StatementProperty | None" = None,
               ) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name, priority=priority, action=_block_with_429(), visibility_config=_visibility(name),
        statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
            limit=limit, aggregate_key_type="IP", evaluation_window_sec=WINDOW_SECONDS,
            scope_down_statement=scope_down,
        )),
    )


def _login_requests() -> wafv2.CfnWebACL.StatementProperty:
    # The URI path WAF sees includes the stage (/<stage>/tokens): match its end.
    return wafv2.CfnWebACL.StatementProperty(byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
        positional_constraint="ENDS_WITH", search_string="/tokens",
        text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="LOWERCASE")],
    ))


class ApiFirewall(Construct):
    """Owns the regional web ACL ``kilele-{stage}-api`` (rules ``logins-per-address`` and
    ``requests-per-address``) and its association with ``api_stage``. Exposes ``web_acl``."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, api_stage: apigw.Stage) -> None:
        super().__init__(scope, construct_id)
        self.web_acl = wafv2.CfnWebACL(
            self, "WebAcl",
            name=f"kilele-{stage}-api",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(f"kilele-{stage}-api"),
            custom_response_bodies={TOO_MANY_REQUESTS_BODY: wafv2.CfnWebACL.CustomResponseBodyProperty(
                content_type="APPLICATION_JSON", content=TOO_MANY_REQUESTS)},
            rules=[
                _rate_rule("logins-per-address", 0, LOGIN_REQUESTS_PER_5_MINUTES, _login_requests()),
                _rate_rule("requests-per-address", 1, REQUESTS_PER_5_MINUTES),
            ],
        )
        association = wafv2.CfnWebACLAssociation(
            self, "ApiStageAssociation", resource_arn=api_stage.stage_arn, web_acl_arn=self.web_acl.attr_arn)
        # The stage must exist before WAF can be associated with it.
        association.node.add_dependency(api_stage)
