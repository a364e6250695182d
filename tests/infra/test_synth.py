"""Synthesize the CDK app in-process and check it against chalicelib/resources.py and cfn-lint."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402

import app as chalice_app  # noqa: E402  (the repo root's app.py: REPO_ROOT is first on sys.path)
import kilele_infra.stack  # noqa: E402
from chalicelib.resources import RESOURCES, QueueSpec, Resources, TableSpec  # noqa: E402
from kilele_infra import KileleStack  # noqa: E402

STAGE = "test"


def _synth() -> Template:
    # An empty bundling-stacks list skips asset bundling, so synth never runs pip.
    app = App(context={"aws:cdk:bundling-stacks": []})
    return Template.from_stack(KileleStack(app, f"kilele-{STAGE}", stage=STAGE))


@pytest.fixture(scope="module")
def template() -> Template:
    return _synth()


def _tables(template: Template) -> dict[str, dict]:
    """Deployed table name -> the whole resource (Properties plus DeletionPolicy)."""
    found = template.find_resources("AWS::DynamoDB::Table")
    return {res["Properties"]["TableName"]: res for res in found.values()}


def _key_schema(hash_key, range_key) -> list[dict]:
    schema = [{"AttributeName": hash_key.name, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return schema


def test_one_table_per_spec(template: Template) -> None:
    template.resource_count_is("AWS::DynamoDB::Table", len(RESOURCES.tables))
    assert set(_tables(template)) == {f"kilele-{STAGE}-{spec.name}" for spec in RESOURCES.tables}


@pytest.mark.parametrize("spec", RESOURCES.tables, ids=lambda spec: spec.name)
def test_table_matches_spec(template: Template, spec: TableSpec) -> None:
    resource = _tables(template)[f"kilele-{STAGE}-{spec.name}"]
    props = resource["Properties"]
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["KeySchema"] == _key_schema(spec.hash_key, spec.range_key)
    attributes = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attributes == spec.attribute_definitions()

    indexes = {gsi["IndexName"]: gsi for gsi in props.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {index.name for index in spec.indexes}
    for index in spec.indexes:
        assert indexes[index.name]["KeySchema"] == _key_schema(index.hash_key, index.range_key)
        assert indexes[index.name]["Projection"] == {"ProjectionType": "ALL"}

    if spec.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in props


def test_buckets_are_private_encrypted_and_retained(template: Template) -> None:
    template.resource_count_is("AWS::S3::Bucket", len(RESOURCES.buckets))
    for resource in template.find_resources("AWS::S3::Bucket").values():
        props = resource["Properties"]
        assert resource["DeletionPolicy"] == "Retain"
        assert "BucketName" not in props  # bucket names are global: CloudFormation picks one
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True,
            "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
        }
        encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}


def test_api_function_environment(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "app.app",
        "Runtime": "python3.12",
        "MemorySize": 1024,
        "Timeout": 30,
        "Environment": {"Variables": {
            "KILELE_STAGE": STAGE,
            "KILELE_DATA_BUCKET_NAME": Match.any_value(),
            "POWERTOOLS_SERVICE_NAME": "kilele-api",
        }},
    })


def test_api_does_not_require_gateway_api_keys(template: Template) -> None:
    # The app checks x-api-key itself; API Gateway keys on methods would reject its callers.
    for method in template.find_resources("AWS::ApiGateway::Method").values():
        assert not method["Properties"].get("ApiKeyRequired", False)
    template.has_resource_properties("AWS::ApiGateway::Stage", {"StageName": STAGE, "TracingEnabled": True})
    template.resource_count_is("AWS::ApiGateway::UsagePlan", 1)


def _api_resource_paths(template: Template) -> dict[str, str]:
    """Logical id of each AWS::ApiGateway::Resource -> its full path, e.g. '/models/{model_id}'."""
    resources = template.find_resources("AWS::ApiGateway::Resource")

    def path_of(logical_id: str) -> str:
        props = resources[logical_id]["Properties"]
        parent = props["ParentId"]
        prefix = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])  # GetAtt RootResourceId
        return f"{prefix}/{props['PathPart']}"

    return {logical_id: path_of(logical_id) for logical_id in resources}


def _api_methods(template: Template) -> set[tuple[str, str]]:
    """(route path, HTTP method) of every AWS::ApiGateway::Method."""
    paths = _api_resource_paths(template)
    found = set()
    for method in template.find_resources("AWS::ApiGateway::Method").values():
        resource_id = method["Properties"]["ResourceId"]
        path = "/" if "Fn::GetAtt" in resource_id else paths[resource_id["Ref"]]
        found.add((path, method["Properties"]["HttpMethod"]))
    return found


def test_one_method_per_chalice_route(template: Template) -> None:
    # Chalice routes on requestContext.resourcePath: behind a {proxy+} resource every route but /
    # would answer 405. Each (route, method) needs its own resource and method, and nothing else.
    expected = {(path, method) for path, entries in chalice_app.app.routes.items() for method in entries}
    assert ("/models/{model_id}/file", "GET") in expected
    assert _api_methods(template) == expected
    assert not any("+" in path for path in _api_resource_paths(template).values())
    template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "{model_id}"})


def test_methods_are_lambda_proxy_integrations_of_the_api_function(template: Template) -> None:
    [function_id] = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": "app.app"}})
    for method in template.find_resources("AWS::ApiGateway::Method").values():
        integration = method["Properties"]["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert integration["IntegrationHttpMethod"] == "POST"
        assert {"Fn::GetAtt": [function_id, "Arn"]} in integration["Uri"]["Fn::Join"][1]


def test_lambda_permissions_stay_few(template: Template) -> None:
    # One permission per method (plus one per method for test invokes) would grow the function's
    # resource policy towards its 20 KB limit with every route.
    permissions = template.find_resources("AWS::Lambda::Permission")
    assert 1 <= len(permissions) <= 3
    for permission in permissions.values():
        assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"


def test_gateway_errors_have_the_product_error_shape(template: Template) -> None:
    json_header = {"gatewayresponse.header.Content-Type": "'application/json'"}
    template.has_resource_properties("AWS::ApiGateway::GatewayResponse", {
        "ResponseType": "MISSING_AUTHENTICATION_TOKEN",
        "StatusCode": "404",
        "ResponseParameters": json_header,
        "ResponseTemplates": {
            "application/json": '{"error": {"code": "not_found", "message": "no such route"}}',
        },
    })
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        template.has_resource_properties("AWS::ApiGateway::GatewayResponse", {
            "ResponseType": response_type,
            "StatusCode": Match.absent(),  # keep the status of the underlying error
            "ResponseParameters": json_header,
            "ResponseTemplates": {
                "application/json": '{"error": {"code": "gateway", "message": $context.error.messageString}}',
            },
        })
    # The no-such-route body must be valid JSON as written.
    not_found = template.find_resources(
        "AWS::ApiGateway::GatewayResponse", {"Properties": {"ResponseType": "MISSING_AUTHENTICATION_TOKEN"}}
    )
    [response] = not_found.values()
    assert json.loads(response["Properties"]["ResponseTemplates"]["application/json"])["error"]["code"] == "not_found"


def test_dashboard_exists(template: Template) -> None:
    template.has_resource_properties("AWS::CloudWatch::Dashboard", {"DashboardName": f"kilele-{STAGE}"})


def test_queues_get_a_dead_letter_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    # RESOURCES has no queue yet; add one so the queue loop is exercised before it is needed.
    with_queue = Resources(RESOURCES.tables, RESOURCES.buckets, (QueueSpec("jobs", 120),))
    monkeypatch.setattr(kilele_infra.stack, "RESOURCES", with_queue)
    template = _synth()
    template.has_resource_properties("AWS::SQS::Queue", {
        "QueueName": f"kilele-{STAGE}-jobs",
        "VisibilityTimeout": 120,
        "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 5},
    })
    template.has_resource_properties("AWS::SQS::Queue", {"QueueName": f"kilele-{STAGE}-jobs-dlq"})
    template.resource_count_is("AWS::SQS::QueuePolicy", 2)  # enforce_ssl on both


def test_cfn_lint_is_clean(template: Template, tmp_path: Path) -> None:
    path = tmp_path / "kilele.template.json"
    path.write_text(json.dumps(template.to_json(), indent=1))
    # cfn-lint 1.x has no `python -m cfnlint`; this is the `cfn-lint` console script's entry point.
    # W3005 (DependsOn already implied by a GetAtt): CDK's Function always adds an explicit
    # DependsOn on its own service role, which also appears in Role: Fn::GetAtt.
    result = subprocess.run(
        [sys.executable, "-c", "from cfnlint.runner import main; main()",
         "--ignore-checks", "W3005", "--", str(path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
