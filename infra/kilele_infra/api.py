"""The HTTP API: the Chalice app (``app.app``) on Lambda behind an API Gateway REST API laid out
the way ``chalice deploy`` lays it out (one resource per Chalice route, one method per route
method, no ``{proxy+}``), with the product's error shape on API Gateway's own errors."""
from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .chalice_app import API_HANDLER, chalice_routes
from .data import Data
from .runtime import FunctionFactory, StateMachineArns
from .serving import Serving

API_TIMEOUT = Duration.seconds(30)

# What `chalice deploy` registers (chalice.app.APIGateway._DEFAULT_BINARY_TYPES), so binary
# bodies reach the app the same way behind this API.
BINARY_MEDIA_TYPES = [
    "application/octet-stream", "application/x-tar", "application/zip",
    "audio/basic", "audio/ogg", "audio/mp4", "audio/mpeg", "audio/wav", "audio/webm",
    "image/png", "image/jpg", "image/jpeg", "image/gif", "video/ogg", "video/mpeg", "video/webm",
]

THROTTLE_RATE = 100  # steady requests per second for the whole stage
THROTTLE_BURST = 200
# Logins (POST /tokens) have a tighter limit of their own: each one costs a password hash (argon2,
# ~64 MiB and tens of ms), so a flood of them is the cheapest way to exhaust the API's Lambdas. The
# per-address limits are WAF's (firewall.py); the app throttles failures per account and address.
LOGIN_THROTTLE_RATE = 20
LOGIN_THROTTLE_BURST = 40

# Every error the API answers has the product's shape, {"error": {"code", "message"}}, including
# the ones API Gateway produces itself. An unknown route (or an unknown method on a known route)
# is a 403 "Missing Authentication Token" from API Gateway: answer 404 like the local gateway.
JSON_CONTENT_TYPE = {"Content-Type": "'application/json'"}  # header values are quoted literals
NOT_FOUND_TEMPLATE = '{"error": {"code": "not_found", "message": "no such route"}}'
# $context.error.messageString is the message already quoted as a JSON string.
GATEWAY_ERROR_TEMPLATE = '{"error": {"code": "gateway", "message": $context.error.messageString}}'


class Api(Construct):
    """Owns the API function (``app.app``, 30 s, service ``kilele-api``, its log group and role),
    the REST API ``kilele-{stage}`` (stage ``{stage}``: access logs, X-Ray, throttling), its
    resources, methods, gateway responses, the function's single invoke permission and the usage
    plan.

    Takes the data resources (the function reads and writes every table and bucket, sends to and
    consumes every queue), Serving (the function creates, invokes and deletes SageMaker
    endpoints) and the state machine ARNs (it starts, stops and describes executions).

    Exposes ``function``, ``rest_api`` and ``public_url`` (the stage's base URL built without the
    Stage, so a function's environment may hold it). Call ``depend_on`` with the state machines so
    the function is never updated before the machines it starts exist.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: str, data: Data, serving: Serving,
        state_machine_arns: StateMachineArns, functions: FunctionFactory,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        self.function = functions.function(
            self, "ApiFunction", handler=API_HANDLER, environment=functions.environment("kilele-api"),
            timeout=API_TIMEOUT,
        )
        data.grant_table_data(self.function)
        for bucket in data.buckets.values():
            bucket.grant_read_write(self.function)
        for queue in data.queues.values():
            # Includes the serving-requests queue: the queue API sends items and reads its
            # backlog (sqs:SendMessage, sqs:GetQueueAttributes, sqs:GetQueueUrl).
            queue.grant_send_messages(self.function)
            queue.grant_consume_messages(self.function)
        state_machine_arns.grant_executions(self.function)
        # Inference jobs: create/delete endpoints (and their autoscaling); predict invokes them.
        serving.grant_manage_endpoints(self.function)
        self.rest_api = build_rest_api(self, self.stage, self.function)

    def depend_on(self, *constructs: Construct) -> None:
        """Not a reference (the function uses built ARNs), only an order of deployment."""
        for construct in constructs:
            self.function.node.add_dependency(construct)

    @property
    def public_url(self) -> str:
        """The stage's base URL, as RestApi.url gives it but built from the RestApi id and the
        stage name: RestApi.url refers to the Stage, which depends on the Deployment, which
        depends on every Method, which refers to the API function -- a cycle once the function's
        environment holds the URL. The RestApi itself does not depend on the function."""
        stack = Stack.of(self)
        return f"https://{self.rest_api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}/{self.stage}"

    @staticmethod
    def _add_routes(api: apigw.RestApi, function: lambda_.IFunction,
                    authorization: "apigw.AuthorizationType | None" = None) -> None:
        """One API Gateway resource per Chalice route and one method per route method, as
        `chalice deploy` does: Chalice dispatches on the event's ``resourcePath`` (which must be
        the route itself, e.g. ``/models/{model_id}/file``) and reads ``pathParameters``."""
        # scope_permission_to_method=False: a single Lambda permission for the whole API instead of
        # two per method (method + test-invoke), which would grow the function's resource policy
        # towards its 20 KB limit as routes are added.
        integration = apigw.LambdaIntegration(function, proxy=True, scope_permission_to_method=False)
        for path, methods in chalice_routes().items():
            resource = api.root.resource_for_path(path)
            for method in methods:
                # The app authenticates every call itself (x-api-key or Authorization: Bearer), so
                # methods must NOT set api_key_required: API Gateway would reject the app's own
                # keys. Left unrequired, API Gateway passes the x-api-key header through untouched.
                resource.add_method(method, integration, authorization_type=authorization)

    @staticmethod
    def _add_gateway_responses(api: apigw.RestApi) -> None:
        api.add_gateway_response(
            "NotFoundResponse",
            type=apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
            status_code="404",
            response_headers=JSON_CONTENT_TYPE,
            templates={"application/json": NOT_FOUND_TEMPLATE},
        )
        for construct_id, response_type in (
            ("Default4xxResponse", apigw.ResponseType.DEFAULT_4_XX),
            ("Default5xxResponse", apigw.ResponseType.DEFAULT_5_XX),
        ):
            # No status_code: the default responses keep the status of the error they stand for.
            api.add_gateway_response(
                construct_id,
                type=response_type,
                response_headers=JSON_CONTENT_TYPE,
                templates={"application/json": GATEWAY_ERROR_TEMPLATE},
            )


def build_rest_api(scope: Construct, stage: str, function: lambda_.IFunction,
                   iam_authorization: bool = False) -> apigw.RestApi:
    """The REST API ``kilele-{stage}`` (``kilele-{stage}-iam`` with IAM authorization on every
    method): one resource and method per Chalice route, access logs, X-Ray, throttling, the
    product's error shape; the usage plan on the key API only."""
    prefix = "Iam" if iam_authorization else ""
    access_logs = logs.LogGroup(scope, f"{prefix}ApiAccessLogs", retention=logs.RetentionDays.THREE_MONTHS)
    api = apigw.RestApi(
        scope, f"{prefix}RestApi",
        rest_api_name=f"kilele-{stage}-iam" if iam_authorization else f"kilele-{stage}",
        binary_media_types=BINARY_MEDIA_TYPES,
        # Access logging needs the account-level API Gateway -> CloudWatch role.
        cloud_watch_role=True,
        deploy_options=apigw.StageOptions(
            stage_name=stage,
            access_log_destination=apigw.LogGroupLogDestination(access_logs),
            access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                caller=iam_authorization, http_method=True, ip=True, protocol=True, request_time=True,
                resource_path=True, response_length=True, status=True, user=iam_authorization,
            ),
            tracing_enabled=True,
            metrics_enabled=True,
            throttling_rate_limit=THROTTLE_RATE,
            throttling_burst_limit=THROTTLE_BURST,
            method_options={"/tokens/POST": apigw.MethodDeploymentOptions(
                throttling_rate_limit=LOGIN_THROTTLE_RATE, throttling_burst_limit=LOGIN_THROTTLE_BURST)},
        ),
    )
    Api._add_routes(api, function, apigw.AuthorizationType.IAM if iam_authorization else None)
    Api._add_gateway_responses(api)
    if iam_authorization:
        return api
    # Throttles only requests that carry an API Gateway key, i.e. none today; it is here so
    # per-client keys can be attached later. The stage throttling above is what protects now.
    api.add_usage_plan(
        "UsagePlan",
        name=f"kilele-{stage}",
        throttle=apigw.ThrottleSettings(rate_limit=THROTTLE_RATE, burst_limit=THROTTLE_BURST),
        api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
    )
    return api

