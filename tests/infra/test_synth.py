"""Synthesize the CDK app in-process and check it against chalicelib/resources.py and cfn-lint."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from stack_template import whole_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_s3 as s3  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402

import app as chalice_app  # noqa: E402  (the repo root's app.py: REPO_ROOT is first on sys.path)
from chalicelib import resources  # noqa: E402
from chalicelib.resources import RESOURCES, TableSpec  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402
from chalicelib.workflows.handlers import FUNCTION_PLACEHOLDERS, HANDLERS  # noqa: E402
from chalicelib.workflows.render import load_template, placeholders  # noqa: E402
from kilele_infra import KileleStack  # noqa: E402
from kilele_infra.image_contexts import content_tags  # noqa: E402
from kilele_infra.serving import Serving  # noqa: E402
from kilele_infra.workflows import WORKFLOW_ENTRY_MODULE  # noqa: E402
from kilele_infra.worker_compute import WORKER_READS, WORKER_WRITES  # noqa: E402

STAGE = "test"


def _synth() -> Template:
    return whole_stack(STAGE)  # one synthesis per test process (stack_template.py)


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


def _function_id(template: Template, handler: str) -> str:
    [function_id] = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": handler}})
    return function_id


def test_lambda_permissions_stay_few(template: Template) -> None:
    # One permission per method (plus one per method for test invokes) would grow the function's
    # resource policy towards its 20 KB limit with every route.
    api_arn = {"Fn::GetAtt": [_function_id(template, "app.app"), "Arn"]}
    permissions = [p["Properties"] for p in template.find_resources("AWS::Lambda::Permission").values()]
    api_permissions = [p for p in permissions if p["FunctionName"] == api_arn]
    assert 1 <= len(api_permissions) <= 3
    for permission in api_permissions:
        assert permission["Principal"] == "apigateway.amazonaws.com"
    # The only others: EventBridge invoking the Batch job-failed function, the image-build
    # function and the dataset-job-ended function. Step Functions and the SQS event source use
    # roles, not resource policies.
    others = [p for p in permissions if p["FunctionName"] != api_arn]
    assert [p["Principal"] for p in others] == ["events.amazonaws.com"] * 3


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


def test_queues_get_a_dead_letter_queue(template: Template) -> None:
    deployed = [spec for spec in RESOURCES.queues if not spec.local_only]
    assert resources.TRIALS_QUEUE in deployed
    for spec in deployed:
        template.has_resource_properties("AWS::SQS::Queue", {
            "QueueName": f"kilele-{STAGE}-{spec.name}",
            "VisibilityTimeout": spec.visibility_timeout_seconds,
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 5},
        })
        template.has_resource_properties("AWS::SQS::Queue", {"QueueName": f"kilele-{STAGE}-{spec.name}-dlq"})
    template.resource_count_is("AWS::SQS::Queue", 2 * len(deployed))
    template.resource_count_is("AWS::SQS::QueuePolicy", 2 * len(deployed))  # enforce_ssl on each


def test_no_local_only_queue_is_deployed(template: Template) -> None:
    local_only = [spec for spec in RESOURCES.queues if spec.local_only]
    assert resources.LAMBDA_SHIM_QUEUE in local_only
    names = {q["Properties"]["QueueName"] for q in template.find_resources("AWS::SQS::Queue").values()}
    for spec in local_only:
        assert f"kilele-{STAGE}-{spec.name}" not in names
        assert f"kilele-{STAGE}-{spec.name}-dlq" not in names


# --- logical ids: a resource whose logical id changes is replaced on the next deploy -----------

# Logical id -> (type, deployed name; None for a bucket, whose name CloudFormation picks). A
# changed id makes CloudFormation replace the resource: with a fixed name (tables, queues,
# repositories) the deploy fails, without one (the bucket) it creates a new, empty one and
# orphans (RETAIN) the old one with its data. Add new stateful resources here; never edit an
# existing entry to make a refactor pass.
STATEFUL_LOGICAL_IDS = {
    "ApiKeysTable9F4DC7E7": ("AWS::DynamoDB::Table", "api-keys"),
    "AppMetricsTable5E1453CD": ("AWS::DynamoDB::Table", "app-metrics"),
    "AppsTable172E1E77": ("AWS::DynamoDB::Table", "apps"),
    "AuditEventsTable0723963E": ("AWS::DynamoDB::Table", "audit-events"),
    "CountersTable23DAAD26": ("AWS::DynamoDB::Table", "counters"),
    "DatasetsTableF4ECB6D5": ("AWS::DynamoDB::Table", "datasets"),
    "InferenceJobsTable10C0E1AF": ("AWS::DynamoDB::Table", "inference-jobs"),
    "LoginAttemptsTable445A52D8": ("AWS::DynamoDB::Table", "login-attempts"),
    "ModelsTableC5E7E44A": ("AWS::DynamoDB::Table", "models"),
    "ProjectsTableAA0A2089": ("AWS::DynamoDB::Table", "projects"),
    "ServingResultsTable608E63C8": ("AWS::DynamoDB::Table", "serving-results"),
    "SessionsTable7C302024": ("AWS::DynamoDB::Table", "sessions"),
    "StressTestsTableC32E9D6A": ("AWS::DynamoDB::Table", "stress-tests"),
    "TrainJobsTable8970DE69": ("AWS::DynamoDB::Table", "train-jobs"),
    "TrialsTableFEB7E98C": ("AWS::DynamoDB::Table", "trials"),
    "UniquesTableD111D0D3": ("AWS::DynamoDB::Table", "uniques"),
    "UsersTable9725E9C8": ("AWS::DynamoDB::Table", "users"),
    "DataBucketE3889A50": ("AWS::S3::Bucket", None),
    "TrialsQueue3958714C": ("AWS::SQS::Queue", "trials"),
    "TrialsDeadLetterQueueD4CDE29D": ("AWS::SQS::Queue", "trials-dlq"),
    "ServingRequestsQueueAC1DF640": ("AWS::SQS::Queue", "serving-requests"),
    "ServingRequestsDeadLetterQueueD4854DE0": ("AWS::SQS::Queue", "serving-requests-dlq"),
    "ServingInferenceRepository15FF1539": ("AWS::ECR::Repository", "inference"),
    "WorkerComputeWorkerRepositoryBD125BE2": ("AWS::ECR::Repository", "worker"),
    "ManagedImagesTable4C908CF8": ("AWS::DynamoDB::Table", "managed-images"),
    "CtInstancesTable0A1039FE": ("AWS::DynamoDB::Table", "ct-instances"),
    "ImageBuildsTable59BD52B4": ("AWS::DynamoDB::Table", "image-builds"),
    "ManagedImagesManagedImageRepository5CF16C53": ("AWS::ECR::Repository", "managed-images"),
}

# Not stateful, but replacing them breaks something: the RestApi's id is the public API URL;
# a state machine and its log group have fixed names (the new one cannot be created while the
# old one exists); so does an SQS event source mapping (one per queue and function). The mapping
# ids embed the stack name, hence the stage.
REPLACEMENT_SENSITIVE_LOGICAL_IDS = {
    "RestApi0C43BF4B": "AWS::ApiGateway::RestApi",
    "TrainWorkerStateMachine5DF2A9E5": "AWS::StepFunctions::StateMachine",
    "TrainWorkerStateMachineLogs10A74564": "AWS::Logs::LogGroup",
    "DispatchTrialsFunctionSqsEventSourcekileletestTrialsQueue17E4A1705EB01314": "AWS::Lambda::EventSourceMapping",
    "ServeQueueItemsFunctionSqsEventSourcekileletestServingRequestsQueue0A26583880B3ABDF":
        "AWS::Lambda::EventSourceMapping",
    "Dashboard9E4231ED": "AWS::CloudWatch::Dashboard",
}

_NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::ECR::Repository": "RepositoryName",
}


@pytest.mark.parametrize("logical_id", STATEFUL_LOGICAL_IDS)
def test_stateful_resources_keep_their_logical_ids(template: Template, logical_id: str) -> None:
    kind, name = STATEFUL_LOGICAL_IDS[logical_id]
    found = template.to_json()["Resources"].get(logical_id)
    assert found is not None, f"{logical_id} ({kind} {name}) is gone: a deploy would replace it"
    assert found["Type"] == kind
    if name is not None:
        assert found["Properties"][_NAME_PROPERTIES[kind]] == f"kilele-{STAGE}-{name}"


def test_every_table_bucket_and_queue_is_pinned(template: Template) -> None:
    # The list above covers every deployed table, bucket and queue (and both repositories), so a
    # refactor cannot move one of them unnoticed.
    for kind in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::ECR::Repository"):
        pinned = {lid for lid, (pinned_kind, _) in STATEFUL_LOGICAL_IDS.items() if pinned_kind == kind}
        deployed = set(template.find_resources(kind))
        assert not deployed - pinned, f"new {kind}: add its logical id to STATEFUL_LOGICAL_IDS"
        assert not pinned - deployed, f"{kind} {sorted(pinned - deployed)}: renamed or removed"


def test_replacement_sensitive_resources_keep_their_logical_ids(template: Template) -> None:
    resources_by_id = template.to_json()["Resources"]
    for logical_id, kind in REPLACEMENT_SENSITIVE_LOGICAL_IDS.items():
        assert resources_by_id.get(logical_id, {}).get("Type") == kind, logical_id


# --- train jobs: workflow Lambdas, state machines, trial dispatch, AWS Batch -------------------

def _state_machines(template: Template) -> dict[str, dict]:
    """Kilele's named machines (not the CDK Provider framework's waiter of platform_images.py)."""
    found = template.find_resources("AWS::StepFunctions::StateMachine")
    return {res["Properties"]["StateMachineName"]: res["Properties"] for res in found.values()
            if "StateMachineName" in res["Properties"]}


def _kilele_functions(template: Template) -> dict[str, dict]:
    """The functions running Kilele's code (its settings in their environment); not the platform
    image builds' provider (infra code of its own) nor CDK's Provider framework."""
    return {logical_id: f for logical_id, f in template.find_resources("AWS::Lambda::Function").items()
            if "KILELE_STAGE" in f["Properties"].get("Environment", {}).get("Variables", {})}


def _logical_id_of_queue(template: Template, name: str) -> str:
    [queue_id] = template.find_resources("AWS::SQS::Queue", {"Properties": {"QueueName": f"kilele-{STAGE}-{name}"}})
    return queue_id


def test_one_lambda_per_workflow_handler(template: Template) -> None:
    expected_env = {
        "KILELE_STAGE": STAGE,
        "KILELE_DATA_BUCKET_NAME": Match.any_value(),
        "KILELE_TRAIN_WORKER_STATE_MACHINE_ARN": Match.any_value(),
        "KILELE_TRIALS_QUEUE_URL": Match.any_value(),
    }
    for name in HANDLERS:
        template.has_resource_properties("AWS::Lambda::Function", {
            "Handler": f"{WORKFLOW_ENTRY_MODULE}.{name}",
            "Runtime": "python3.12",
            "MemorySize": 1024,
            "Timeout": 60,
            "Environment": {"Variables": expected_env},
        })
    handlers = [f["Properties"]["Handler"] for f in _kilele_functions(template).values()]
    workflow_handlers = [h for h in handlers if h.startswith(f"{WORKFLOW_ENTRY_MODULE}.")]
    assert sorted(workflow_handlers) == sorted(f"{WORKFLOW_ENTRY_MODULE}.{name}" for name in HANDLERS)
    # The API, one per workflow handler and one per other handler of app.py (the trial dispatcher,
    # the Batch job-failed and image-build handlers, the serving-requests consumer ...), once each.
    event_handlers = [source.handler_string for source in chalice_app.app.event_sources]
    other_functions = [f.handler_string for f in chalice_app.app.pure_lambda_functions if f.name not in HANDLERS]
    assert sorted(handlers) == sorted(["app.app", *workflow_handlers, *event_handlers, *other_functions])


def test_every_lambda_handler_is_importable(template: Template) -> None:
    for function in _kilele_functions(template).values():
        module_name, _, attribute = function["Properties"]["Handler"].rpartition(".")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attribute)), function["Properties"]["Handler"]


def test_api_and_workflow_lambdas_know_the_state_machine(template: Template) -> None:
    for function in _kilele_functions(template).values():
        variables = function["Properties"]["Environment"]["Variables"]
        arn = variables["KILELE_TRAIN_WORKER_STATE_MACHINE_ARN"]
        # Built from the name, not a Ref/GetAtt of the machine (which would be a dependency cycle).
        parts = arn["Fn::Join"][1]
        assert parts[-1] == f":stateMachine:kilele-{STAGE}-{resources.TRAIN_WORKER.name}"
        assert variables["KILELE_TRIALS_QUEUE_URL"] == {"Ref": _logical_id_of_queue(template, "trials")}
        assert variables["KILELE_MAX_TRIALS_PER_EXECUTION"] == str(Settings().max_trials_per_execution)


@pytest.mark.parametrize("spec", RESOURCES.state_machines, ids=lambda spec: spec.name)
def test_state_machine_fills_every_placeholder(template: Template, spec) -> None:
    props = _state_machines(template)[f"kilele-{STAGE}-{spec.name}"]
    substitutions = props["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders(load_template(spec.template))
    for placeholder, handler in FUNCTION_PLACEHOLDERS.items():
        if placeholder in substitutions:
            function_id = _function_id(template, f"{WORKFLOW_ENTRY_MODULE}.{handler}")
            assert substitutions[placeholder] == {"Fn::GetAtt": [function_id, "Arn"]}
    if "TrialsQueueUrl" in substitutions:
        assert substitutions["TrialsQueueUrl"] == {"Ref": _logical_id_of_queue(template, "trials")}
    if "MaxTrialsPerExecution" in substitutions:
        assert substitutions["MaxTrialsPerExecution"] == str(Settings().max_trials_per_execution)
    assert "DefinitionS3Location" in props  # the template file itself, as an asset
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True


def test_state_machine_may_invoke_its_lambdas_and_send_trials(template: Template) -> None:
    # Each machine (train worker, stress test, managed image) invokes exactly the Lambdas its
    # template names, and sends to the trials queue if its template names it.
    machines = _state_machines(template)
    assert set(machines) == {f"kilele-{STAGE}-{spec.name}" for spec in RESOURCES.state_machines}
    for spec in RESOURCES.state_machines:
        role_id = machines[f"kilele-{STAGE}-{spec.name}"]["RoleArn"]["Fn::GetAtt"][0]
        policies = template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
        statements = [st for policy in policies.values() for st in policy["Properties"]["PolicyDocument"]["Statement"]]
        invoked = {
            r["Fn::GetAtt"][0]
            for st in statements if st["Action"] == "lambda:InvokeFunction"
            for r in st["Resource"] if "Fn::GetAtt" in r
        }
        needed = placeholders(load_template(spec.template))
        assert invoked == {_function_id(template, f"{WORKFLOW_ENTRY_MODULE}.{h}")
                           for p, h in FUNCTION_PLACEHOLDERS.items() if p in needed}, spec.name
        trials_queue = _logical_id_of_queue(template, "trials")
        sends_trials = any(
            "sqs:SendMessage" in st["Action"] and st["Resource"] == {"Fn::GetAtt": [trials_queue, "Arn"]}
            for st in statements
        )
        # The managed-image machine only polls its builds: it sends nothing to the workers.
        assert sends_trials == ("TrialsQueueUrl" in needed), spec.name


def test_trials_queue_feeds_the_dispatcher(template: Template) -> None:
    dispatcher = _function_id(template, "app.dispatch_trials")
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": 1,
        "EventSourceArn": {"Fn::GetAtt": [_logical_id_of_queue(template, "trials"), "Arn"]},
        "FunctionName": {"Ref": dispatcher},
    })
    # The trials queue and the serving-requests queue (see the serving tests).
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 2)
    variables = template.to_json()["Resources"][dispatcher]["Properties"]["Environment"]["Variables"]
    assert {
        "KILELE_BATCH_CPU_JOB_QUEUE", "KILELE_BATCH_GPU_JOB_QUEUE",
        "KILELE_BATCH_JOB_DEFINITION", "KILELE_BATCH_GPU_JOB_DEFINITION",
    } <= set(variables)


def _statements_of_role(template: Template, role_id: str) -> list[dict]:
    statements: list[dict] = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in template.find_resources(kind, {"Properties": {"Roles": [{"Ref": role_id}]}}).values():
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _statements_of_function(template: Template, handler: str) -> list[dict]:
    function = template.to_json()["Resources"][_function_id(template, handler)]
    return _statements_of_role(template, function["Properties"]["Role"]["Fn::GetAtt"][0])


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _actions_of_function(template: Template, handler: str) -> set[str]:
    return {a for st in _statements_of_function(template, handler) for a in _as_list(st["Action"])}


def test_lambda_permissions_for_train_jobs(template: Template) -> None:
    dispatcher_actions = _actions_of_function(template, "app.dispatch_trials")
    assert {"batch:SubmitJob", "batch:TagResource", "states:SendTaskFailure"} <= dispatcher_actions
    assert "states:SendTaskFailure" in _actions_of_function(template, "app.batch_job_failed")
    for handler in ["app.app"] + [f"{WORKFLOW_ENTRY_MODULE}.{name}" for name in HANDLERS]:
        assert {"states:StartExecution", "states:StopExecution"} <= _actions_of_function(template, handler)
    # Inline policies stay below IAM's limit: no overflow managed policies (CDK names them *OverflowPolicy*;
    # the managed policies a construct makes on purpose are named for what they grant).
    assert [i for i in template.find_resources("AWS::IAM::ManagedPolicy") if "OverflowPolicy" in i] == []


def test_batch_queues_and_job_definitions(template: Template) -> None:
    template.resource_count_is("AWS::Batch::JobQueue", 2)
    for name in ("trials-cpu", "trials-gpu"):
        template.has_resource_properties("AWS::Batch::JobQueue", {"JobQueueName": f"kilele-{STAGE}-{name}"})
    template.has_resource_properties("AWS::Batch::ComputeEnvironment", {
        "Type": "managed", "ComputeResources": {"Type": "FARGATE"},
    })
    template.has_resource_properties("AWS::Batch::ComputeEnvironment", {
        "Type": "managed",
        "ComputeResources": {"Type": "EC2", "InstanceTypes": ["g4dn.xlarge"], "MinvCpus": 0},
    })
    template.has_resource_properties("AWS::Batch::JobDefinition", {
        "JobDefinitionName": f"kilele-{STAGE}-worker",
        "PlatformCapabilities": ["FARGATE"],
        "ContainerProperties": {
            # (array_with keeps the order: CDK writes MEMORY before VCPU)
            "ResourceRequirements": Match.array_with([
                {"Type": "MEMORY", "Value": "8192"}, {"Type": "VCPU", "Value": "2"},
            ]),
            "NetworkConfiguration": {"AssignPublicIp": "ENABLED"},
            "JobRoleArn": Match.any_value(),
        },
    })
    template.has_resource_properties("AWS::Batch::JobDefinition", {
        "JobDefinitionName": f"kilele-{STAGE}-worker-gpu",
        "PlatformCapabilities": ["EC2"],
        "ContainerProperties": {
            "ResourceRequirements": Match.array_with([{"Type": "GPU", "Value": "1"}]),
            "JobRoleArn": Match.any_value(),
        },
    })
    # No `command` in the job definitions: the image's ENTRYPOINT runs the worker.
    for definition in template.find_resources("AWS::Batch::JobDefinition").values():
        assert "Command" not in definition["Properties"]["ContainerProperties"]


def test_worker_repository_is_retained(template: Template) -> None:
    template.has_resource("AWS::ECR::Repository", {
        "Properties": {"RepositoryName": f"kilele-{STAGE}-worker"},
        "DeletionPolicy": "Retain",
    })


def _role_statements(template: Template, role_id: str) -> list[dict]:
    policies = template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
    return [st for p in policies.values() for st in p["Properties"]["PolicyDocument"]["Statement"]]


def _actions(statements: list[dict]) -> set[str]:
    return {a for st in statements for a in _as_list(st["Action"])}


def test_worker_job_role(template: Template) -> None:
    """The container's role answers task tokens and assumes the trial role; nothing else (no
    S3: a run's S3 rights come from the trial role, narrowed to its keys)."""
    [role_id] = template.find_resources("AWS::IAM::Role", {"Properties": {
        "AssumeRolePolicyDocument": {"Statement": [
            {"Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole", "Effect": "Allow"},
        ]},
        "Description": Match.string_like_regexp("trial worker"),
    }})
    [trial_role_id] = template.find_resources("AWS::IAM::Role", {"Properties": {
        "Description": Match.string_like_regexp("trial run")}})
    statements = _role_statements(template, role_id)
    assert _actions(statements) == {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat",
                                    "sts:AssumeRole", "sts:TagSession"}
    [assume] = [st for st in statements if "sts:AssumeRole" in _as_list(st["Action"])]
    assert assume["Resource"] == {"Fn::GetAtt": [trial_role_id, "Arn"]}
    # The workers get the trial role's ARN (kilele_worker.settings.TRIAL_ROLE_ARN_ENV).
    for definition in template.find_resources("AWS::Batch::JobDefinition").values():
        environment = {e["Name"]: e["Value"] for e in definition["Properties"]["ContainerProperties"]["Environment"]}
        assert environment["KILELE_TRIAL_ROLE_ARN"] == {"Fn::GetAtt": [trial_role_id, "Arn"]}


def test_worker_trial_role(template: Template) -> None:
    """Only the job role may assume the trial role (tagging its session); the trial role holds
    object reads and writes under the worker's prefixes, which each run's session policy
    narrows to its own keys (tests/unit/worker/test_worker_run_credentials.py)."""
    [(trial_role_id, trial_role)] = template.find_resources("AWS::IAM::Role", {"Properties": {
        "Description": Match.string_like_regexp("trial run")}}).items()
    [job_role_id] = template.find_resources("AWS::IAM::Role", {"Properties": {
        "Description": Match.string_like_regexp("trial worker")}})
    [trust] = trial_role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert trust["Principal"] == {"AWS": {"Fn::GetAtt": [job_role_id, "Arn"]}}
    assert trial_role["Properties"]["MaxSessionDuration"] == 3600

    statements = _role_statements(template, trial_role_id)
    assert _actions(statements) == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    # The worker reports through its task token and S3; only the trial loop writes trial rows.
    assert not {a for a in _actions(statements) if not a.startswith("s3:")}

    # Least privilege in the data bucket: objects only under the prefixes a worker reads or
    # writes; writes only where its outputs go (never bundles/, never the whole bucket).
    def object_prefixes(action: str) -> set[str]:
        found = set()
        for st in statements:
            if action not in _as_list(st["Action"]):
                continue
            for resource in _as_list(st["Resource"]):
                assert isinstance(resource, dict) and "Fn::Join" in resource, resource
                found.add(resource["Fn::Join"][1][-1])
        return found

    assert object_prefixes("s3:GetObject") == {f"/{p}*" for p in WORKER_READS + WORKER_WRITES}
    assert object_prefixes("s3:PutObject") == {f"/{p}*" for p in WORKER_WRITES}


def test_gpu_instances_keep_instance_metadata_from_containers(template: Template) -> None:
    """IMDSv2 only, hop limit 1: a container behind the bridge network cannot get the instance's
    credentials (Fargate, the CPU queue, has no instance metadata)."""
    [template_id] = template.find_resources("AWS::EC2::LaunchTemplate", {"Properties": {"LaunchTemplateData": {
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
    }}})
    environments = template.find_resources("AWS::Batch::ComputeEnvironment", {
        "Properties": {"ComputeResources": {"Type": "EC2"}}})
    [gpu] = environments.values()
    assert template_id in json.dumps(gpu["Properties"]["ComputeResources"]["LaunchTemplate"])


def test_batch_job_failed_rule(template: Template) -> None:
    handler = _function_id(template, "app.batch_job_failed")
    queues = sorted(template.find_resources("AWS::Batch::JobQueue"))
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["aws.batch"],
            "detail-type": ["Batch Job State Change"],
            "detail": {
                "status": ["FAILED"],
                "jobQueue": [{"Fn::GetAtt": [queue, "JobQueueArn"]} for queue in queues],
            },
        },
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [handler, "Arn"]}})],
    })


def test_dashboard_watches_train_jobs(template: Template) -> None:
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut",
                   "ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        assert metric in body, metric


# --- serving: inference image, SageMaker role and grants, the serving-requests consumer ---------

SAGEMAKER_ENV = ("KILELE_ENDPOINTS_URI", "KILELE_SAGEMAKER_IMAGE_URI", "KILELE_SAGEMAKER_GPU_IMAGE_URI",
                 "KILELE_SAGEMAKER_ROLE_ARN", "KILELE_SAGEMAKER_SERVERLESS", "KILELE_CLOUDWATCH_METRICS")


def _logical_id(template: Template, kind: str, props: dict) -> str:
    [logical_id] = template.find_resources(kind, {"Properties": props})
    return logical_id


def _repository_id(template: Template) -> str:
    return _logical_id(template, "AWS::ECR::Repository", {"RepositoryName": f"kilele-{STAGE}-inference"})


def _sagemaker_role_id(template: Template) -> str:
    return _logical_id(template, "AWS::IAM::Role", {"AssumeRolePolicyDocument": {"Statement": [
        {"Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole", "Effect": "Allow"},
    ]}})


def _arn_tail(resource) -> str:
    """The literal end of an ARN built by Stack.format_arn (a Fn::Join), e.g. ':model/kilele-test-*'."""
    return resource["Fn::Join"][1][-1] if isinstance(resource, dict) and "Fn::Join" in resource else resource


def test_inference_repository_is_retained_and_scanned(template: Template) -> None:
    template.has_resource("AWS::ECR::Repository", {
        "Properties": {
            "RepositoryName": f"kilele-{STAGE}-inference",
            "ImageScanningConfiguration": {"ScanOnPush": True},
        },
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
    })


def test_sagemaker_role_pulls_the_image_and_reads_bundles(template: Template) -> None:
    statements = _statements_of_role(template, _sagemaker_role_id(template))
    repository = _repository_id(template)
    pulls = [st for st in statements if "ecr:BatchGetImage" in _as_list(st["Action"])]
    # The inference images, and the managed images endpoints of models with dependencies run in
    # (issue 11; infra/kilele_infra/image_runtimes.py): pulls of those two repositories only.
    [managed] = [r for r in template.find_resources("AWS::ECR::Repository")
                 if r.startswith("ManagedImagesManagedImageRepository")]
    assert sorted(json.dumps(st["Resource"]) for st in pulls) == sorted(
        json.dumps({"Fn::GetAtt": [r, "Arn"]}) for r in (repository, managed))
    assert any(st["Action"] == "ecr:GetAuthorizationToken" for st in statements)
    [read] = [st for st in statements if "s3:GetObject*" in _as_list(st["Action"])]
    object_arns = [r for r in read["Resource"] if "Fn::Join" in r]
    assert [r["Fn::Join"][1][-1] for r in object_arns] == ["/bundles/*"]  # no other key of the bucket
    actions = {a for st in statements for a in _as_list(st["Action"])}
    assert {"logs:CreateLogStream", "logs:PutLogEvents", "cloudwatch:PutMetricData"} <= actions
    assert not any(a.startswith(("s3:Put", "s3:Delete", "dynamodb:", "sagemaker:")) for a in actions)
    [logs_statement] = [st for st in statements if "logs:PutLogEvents" in _as_list(st["Action"])]
    assert _arn_tail(logs_statement["Resource"]).endswith(f":log-group:/aws/sagemaker/Endpoints/kilele-{STAGE}-*")


def test_api_function_serves_through_sagemaker(template: Template) -> None:
    api = _function_id(template, "app.app")
    variables = template.to_json()["Resources"][api]["Properties"]["Environment"]["Variables"]
    assert set(SAGEMAKER_ENV) | {"KILELE_PUBLIC_API_URL"} <= set(variables)
    assert variables["KILELE_ENDPOINTS_URI"] == "sagemaker://"
    assert variables["KILELE_CLOUDWATCH_METRICS"] == "true"
    assert variables["KILELE_SAGEMAKER_SERVERLESS"] == "false"  # instances unless asked (see below)
    assert variables["KILELE_SAGEMAKER_ROLE_ARN"] == {"Fn::GetAtt": [_sagemaker_role_id(template), "Arn"]}
    repository = _repository_id(template)
    tags = content_tags()  # the images the stack builds (kilele_infra/platform_images.py)
    for name, tag in (("KILELE_SAGEMAKER_IMAGE_URI", tags["inference"]),
                      ("KILELE_SAGEMAKER_GPU_IMAGE_URI", tags["inference-gpu"])):
        parts = variables[name]["Fn::Join"][1]
        assert {"Ref": repository} in parts and parts[-1].endswith(f":{tag}"), name
    # Built from the RestApi id and the stage name, not from the Stage (which would be a cycle:
    # Stage -> Deployment -> Methods -> function).
    url = variables["KILELE_PUBLIC_API_URL"]["Fn::Join"][1]
    [rest_api] = template.find_resources("AWS::ApiGateway::RestApi")
    assert url[0] == "https://" and url[1] == {"Ref": rest_api}
    assert url[-1].endswith(f"/{STAGE}")
    stages = set(template.find_resources("AWS::ApiGateway::Stage"))
    assert not any(stage in json.dumps(url) for stage in stages)


def test_api_may_manage_and_invoke_this_stages_endpoints(template: Template) -> None:
    statements = _statements_of_function(template, "app.app")
    by_action: dict[str, list[dict]] = {}
    for st in statements:
        for action in _as_list(st["Action"]):
            by_action.setdefault(action, []).append(st)
    expected_tails = {
        "Model": f":model/kilele-{STAGE}-*",
        "EndpointConfig": f":endpoint-config/kilele-{STAGE}-*",
        "Endpoint": f":endpoint/kilele-{STAGE}-*",
    }
    for kind, tail in expected_tails.items():
        for verb in ("Create", "Describe", "Delete"):
            found = by_action.get(f"sagemaker:{verb}{kind}")
            assert found, f"sagemaker:{verb}{kind}"
            for st in found:
                # Each statement names only this stage's kilele-{stage}-* resources.
                tails = {_arn_tail(r) for r in _as_list(st["Resource"])}
                assert tail in tails and all(f"/kilele-{STAGE}-*" in t for t in tails), (verb, kind, tails)
    for st in by_action["sagemaker:InvokeEndpoint"]:
        assert {_arn_tail(r) for r in _as_list(st["Resource"])} == {expected_tails["Endpoint"]}
    assert not any(a.startswith("sagemaker:") and st["Resource"] == "*"
                   for a, sts in by_action.items() for st in sts)

    # The SageMaker role to SageMaker; the only other role it passes is the platform image builds'
    # to CodeBuild (`kilele images build`, tests/infra/test_platform_builds_on_demand.py).
    [pass_role] = [st for st in by_action["iam:PassRole"]
                   if st["Resource"] == {"Fn::GetAtt": [_sagemaker_role_id(template), "Arn"]}]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert all(st["Condition"] == {"StringEquals": {"iam:PassedToService": "codebuild.amazonaws.com"}}
               for st in by_action["iam:PassRole"] if st is not pass_role)

    for action in ("RegisterScalableTarget", "PutScalingPolicy", "DeregisterScalableTarget",
                   "DescribeScalableTargets", "DescribeScalingPolicies"):
        assert by_action.get(f"application-autoscaling:{action}"), action
    [service_linked] = by_action["iam:CreateServiceLinkedRole"]
    assert _arn_tail(service_linked["Resource"]).endswith(
        "/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    assert service_linked["Condition"] == {
        "StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"},
    }

    serving_queue = {"Fn::GetAtt": [_logical_id_of_queue(template, resources.SERVING_REQUESTS_QUEUE.name), "Arn"]}
    queue_actions = {a for st in statements if st["Resource"] == serving_queue for a in _as_list(st["Action"])}
    assert {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"} <= queue_actions
    assert "cloudwatch:PutMetricData" not in by_action  # EMF: metrics travel in the logs


def test_serving_requests_queue_feeds_its_consumer(template: Template) -> None:
    spec = resources.SERVING_REQUESTS_QUEUE
    consumer = _function_id(template, "app.serve_queue_items")
    props = template.to_json()["Resources"][consumer]["Properties"]
    assert props["Timeout"] == 50
    assert props["Timeout"] < spec.visibility_timeout_seconds
    [config] = [s for s in chalice_app.app.event_sources if s.handler_string == "app.serve_queue_items"]
    assert config.batch_size == 10
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": config.batch_size,
        "EventSourceArn": {"Fn::GetAtt": [_logical_id_of_queue(template, spec.name), "Arn"]},
        "FunctionName": {"Ref": consumer},
        "FunctionResponseTypes": Match.absent(),  # ReportBatchItemFailures off: whole batches
    })
    # The same environment as the API (endpoints, tables, bucket, public URL) but its own service
    # name; the image builders' settings and the worker's Batch queues only the API has (it alone
    # starts image builds and submits dataset check jobs).
    variables = props["Environment"]["Variables"]
    api = template.to_json()["Resources"][_function_id(template, "app.app")]["Properties"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "kilele-serving"
    api_only = ("KILELE_IMAGE_", "KILELE_PLATFORM_IMAGE_", "KILELE_BATCH_")
    assert {k: v for k, v in variables.items() if k != "POWERTOOLS_SERVICE_NAME"} == \
        {k: v for k, v in api.items() if k != "POWERTOOLS_SERVICE_NAME" and not k.startswith(api_only)}
    actions = _actions_of_function(template, "app.serve_queue_items")
    assert {"sagemaker:InvokeEndpoint", "dynamodb:PutItem", "dynamodb:Query",
            "sqs:ReceiveMessage", "sqs:DeleteMessage"} <= actions
    assert not any(a.startswith(("sagemaker:Create", "sagemaker:Delete", "iam:", "application-autoscaling:"))
                   for a in actions)


def test_dashboard_watches_serving(template: Template) -> None:
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"]).replace("\\", "")
    assert "{Kilele,app,service,stage}" in body
    for metric in ("Requests", "Errors", "Defaults", "Latency"):
        assert f'MetricName="{metric}" stage="{STAGE}"' in body, metric
    assert "'p50'" in body and "'p99'" in body
    assert "{AWS/SageMaker,EndpointName,VariantName}" in body
    for metric in ("Invocations", "ModelLatency"):
        assert f'MetricName="{metric}" EndpointName=kilele-{STAGE}' in body, metric
    assert "Serving-requests queue depth" in body
    # The queue's QueueName dimension (a Fn::GetAtt of the serving-requests queue).
    assert _logical_id_of_queue(template, resources.SERVING_REQUESTS_QUEUE.name) in body


def test_dashboard_watches_continuous_tests_and_their_record_steps_emit_metrics(template: Template) -> None:
    # The rows themselves are checked against what a job emits in test_ct_synth.py.
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"]).replace("\\", "")
    for metric in ("BinsTested", "BinsFailed", "MonitorsBreached", "JobsFailed", "MetricValue"):
        assert f'{{"Kilele/ContinuousTests",app,"ct_instance",' in body and f'MetricName="{metric}"' in body, metric
    # ContinuousTestService.record / record_failure run in these (chalicelib/workflows/handlers.py);
    # ct_metrics_uri unset and cloudwatch_metrics on: EMF log lines (chalicelib/wiring_metrics.py).
    for handler in ("record_stress_test", "record_stress_test_failure"):
        function_id = _function_id(template, f"{WORKFLOW_ENTRY_MODULE}.{handler}")
        variables = template.to_json()["Resources"][function_id]["Properties"]["Environment"]["Variables"]
        assert variables["KILELE_CLOUDWATCH_METRICS"] == "true" and "KILELE_CT_METRICS_URI" not in variables


def test_serverless_is_a_stack_option(monkeypatch: pytest.MonkeyPatch) -> None:
    # The construct alone (no synth, which is what makes these tests slow).
    stack = Stack(App(context={"aws:cdk:bundling-stacks": []}), "serverless")
    serving = Serving(stack, "Serving", stage=STAGE, bucket=s3.Bucket(stack, "Bucket"), serverless=True)
    value = serving.environment()["KILELE_SAGEMAKER_SERVERLESS"]
    monkeypatch.setenv("KILELE_SAGEMAKER_SERVERLESS", value)
    assert Settings().sagemaker_serverless is True
    monkeypatch.setenv("KILELE_SAGEMAKER_SERVERLESS", "false")  # what the stack sets by default
    assert Settings().sagemaker_serverless is False


def test_serving_outputs(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    assert {"Ref": _repository_id(template)} in outputs["InferenceRepositoryUri"]["Value"]["Fn::Join"][1]
    assert outputs["SageMakerRoleArn"]["Value"] == {"Fn::GetAtt": [_sagemaker_role_id(template), "Arn"]}

# --- brute force and floods: API Gateway throttling and the WAF web ACL (issue 9, finding 4) ------

def test_the_stage_throttles_all_requests_and_logins_more_tightly(template: Template) -> None:
    from kilele_infra.api import LOGIN_THROTTLE_BURST, LOGIN_THROTTLE_RATE, THROTTLE_BURST, THROTTLE_RATE

    [stage] = template.find_resources("AWS::ApiGateway::Stage").values()
    settings = {(m.get("ResourcePath"), m.get("HttpMethod")): m for m in stage["Properties"]["MethodSettings"]}
    assert settings[("/*", "*")]["ThrottlingRateLimit"] == THROTTLE_RATE
    assert settings[("/*", "*")]["ThrottlingBurstLimit"] == THROTTLE_BURST
    # API Gateway escapes "/" in a method setting's resource path as "~1".
    login = settings[("/~1tokens", "POST")]
    assert (login["ThrottlingRateLimit"], login["ThrottlingBurstLimit"]) == (LOGIN_THROTTLE_RATE, LOGIN_THROTTLE_BURST)
    assert LOGIN_THROTTLE_RATE < THROTTLE_RATE


def test_a_waf_web_acl_limits_each_address_and_guards_the_api_stage(template: Template) -> None:
    from kilele_infra.firewall import LOGIN_REQUESTS_PER_5_MINUTES, REQUESTS_PER_5_MINUTES

    [acl] = template.find_resources("AWS::WAFv2::WebACL").values()
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL" and props["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in props["Rules"]}
    assert set(rules) == {"logins-per-address", "requests-per-address"}
    logins = rules["logins-per-address"]["Statement"]["RateBasedStatement"]
    assert (logins["Limit"], logins["AggregateKeyType"]) == (LOGIN_REQUESTS_PER_5_MINUTES, "IP")
    match = logins["ScopeDownStatement"]["ByteMatchStatement"]
    assert (match["SearchString"], match["PositionalConstraint"], match["FieldToMatch"]) == (
        "/tokens", "ENDS_WITH", {"UriPath": {}})
    everything = rules["requests-per-address"]["Statement"]["RateBasedStatement"]
    assert (everything["Limit"], everything["AggregateKeyType"]) == (REQUESTS_PER_5_MINUTES, "IP")
    assert "ScopeDownStatement" not in everything and LOGIN_REQUESTS_PER_5_MINUTES < REQUESTS_PER_5_MINUTES
    for rule in rules.values():  # blocked: 429 with Retry-After and the API's error shape
        response = rule["Action"]["Block"]["CustomResponse"]
        assert response["ResponseCode"] == 429
        assert response["ResponseHeaders"][0]["Name"] == "Retry-After"
        body = props["CustomResponseBodies"][response["CustomResponseBodyKey"]]
        assert json.loads(body["Content"])["error"]["code"] == "too_many_requests"

    [association] = template.find_resources("AWS::WAFv2::WebACLAssociation").values()
    [acl_id] = template.find_resources("AWS::WAFv2::WebACL")
    [stage_id] = template.find_resources("AWS::ApiGateway::Stage")
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert stage_id in json.dumps(association["Properties"]["ResourceArn"])  # this API's stage
    assert stage_id in association.get("DependsOn", [])


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


# --- managed images (issue 11): the CodeBuild project, its role, the repository, the API's grants

from chalicelib.adapters.images.codebuild import FREEZE_PREFIX  # noqa: E402


def _image_resource(resources: dict, kind: str, contains: str) -> tuple[str, dict]:
    [found] = [(lid, r) for lid, r in resources.items() if r["Type"] == kind and contains in lid]
    return found


def _image_role_statements(resources: dict, role_id: str) -> list[dict]:
    return [statement for r in resources.values() if r["Type"] == "AWS::IAM::Policy"
            and {"Ref": role_id} in r["Properties"]["Roles"]
            for statement in r["Properties"]["PolicyDocument"]["Statement"]]


def _statement_actions(statement: dict) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def test_the_project_runs_the_buildspec_verbatim_privileged_with_its_repository_and_bucket(template: Template) -> None:
    resources = template.to_json()["Resources"]
    _, project = _image_resource(resources, "AWS::CodeBuild::Project", "ManagedImages")
    props = project["Properties"]
    assert props["Name"] == f"kilele-{STAGE}-images"
    assert props["Source"] == {"Type": "NO_SOURCE",
                               "BuildSpec": (REPO_ROOT / "containers/builder/buildspec.yml").read_text()}
    assert props["Environment"]["PrivilegedMode"] is True  # docker build
    names = {v["Name"] for v in props["Environment"]["EnvironmentVariables"]}
    assert names == {"IMAGE_REPOSITORY", "DATA_BUCKET"}  # the rest come with each build
    repo_id, repo = _image_resource(resources, "AWS::ECR::Repository", "ManagedImageRepository")
    assert repo["Properties"]["RepositoryName"] == f"kilele-{STAGE}-managed-images"
    assert repo["DeletionPolicy"] == "Retain"


def test_the_build_role_may_pull_the_bases_push_its_repository_and_write_only_its_freeze_prefix(template: Template) -> None:
    resources = template.to_json()["Resources"]
    role_id, _ = _image_resource(resources, "AWS::IAM::Role", "ManagedImagesBuildRole")
    statements = _image_role_statements(resources, role_id)
    pushes = [s for s in statements if "ecr:PutImage" in _statement_actions(s)]
    assert [s["Resource"] for s in pushes] == [{"Fn::GetAtt": ["ManagedImagesManagedImageRepository5CF16C53", "Arn"]}]
    pulled = {s["Resource"]["Fn::GetAtt"][0] for s in statements
              if "ecr:BatchGetImage" in _statement_actions(s) and "ecr:PutImage" not in _statement_actions(s)}
    assert pulled == {"WorkerComputeWorkerRepositoryBD125BE2", "ServingInferenceRepository15FF1539"}
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _statement_actions(s))]
    assert len(s3) == 1 and not any(a.startswith(("s3:Get", "s3:List", "s3:Delete")) for a in _statement_actions(s3[0]))
    assert s3[0]["Resource"]["Fn::Join"][1][-1] == f"/{FREEZE_PREFIX}*"
    everything = [s for s in statements if s["Resource"] == "*"]
    assert [_statement_actions(s) for s in everything] == [{"ecr:GetAuthorizationToken"}]  # ECR requires "*" for it
    assert not any(a.startswith(("iam:", "sts:", "dynamodb:", "states:")) for s in statements for a in _statement_actions(s))


@pytest.mark.parametrize("handler", ["app.app", f"{WORKFLOW_ENTRY_MODULE}.poll_image_build"])
def test_the_api_and_the_image_workflow_may_start_and_follow_builds_of_the_project(template: Template,
                                                                                  handler: str) -> None:
    resources = template.to_json()["Resources"]
    function = resources[_function_id(template, handler)]
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["KILELE_IMAGE_BUILDER_URI"] == f"codebuild://kilele-{STAGE}-images"
    for name in ("KILELE_IMAGE_REPOSITORY_URI", "KILELE_IMAGE_BASE_WORKER_URI", "KILELE_IMAGE_BASE_INFERENCE_URI",
                 "KILELE_MANAGED_IMAGE_STATE_MACHINE_ARN"):
        assert name in variables
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = _image_role_statements(resources, role)
    assert {"logs:GetLogEvents"} in [_statement_actions(s) for s in statements]
    builds = [s for s in statements if _statement_actions(s) & {"codebuild:StartBuild", "codebuild:BatchGetBuilds"}]
    assert len(builds) == 1
    assert _statement_actions(builds[0]) == {"codebuild:StartBuild", "codebuild:BatchGetBuilds"}
    assert builds[0]["Resource"] == {"Fn::GetAtt": ["ManagedImagesBuildProject7EFB937F", "Arn"]}


# --- the IAM API (issue 13): the same routes behind AWS_IAM, in a nested stack -----------------

def _iam_api_template(template: Template) -> Template:
    from aws_cdk import App

    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = KileleStack(app, f"kilele-{STAGE}", stage=STAGE)
    return Template.from_stack(stack.iam_api)


@pytest.fixture(scope="module")
def iam_api(template: Template) -> Template:
    return _iam_api_template(template)


def test_the_iam_api_serves_every_route_with_iam_authorization(template: Template, iam_api: Template) -> None:
    expected = {(path, method) for path, entries in chalice_app.app.routes.items() for method in entries}
    assert _api_methods(iam_api) == expected
    for method in iam_api.find_resources("AWS::ApiGateway::Method").values():
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    # The key API keeps no IAM authorization: tokens and API keys go through it as before.
    for method in template.find_resources("AWS::ApiGateway::Method").values():
        assert method["Properties"].get("AuthorizationType", "NONE") == "NONE"
    [rest_api] = iam_api.find_resources("AWS::ApiGateway::RestApi").values()
    assert rest_api["Properties"]["Name"] == f"kilele-{STAGE}-iam"
    template.resource_count_is("AWS::CloudFormation::Stack", 1)
    outputs = template.to_json()["Outputs"]
    assert {"ApiUrl", "IamApiUrl", "InvokePolicyArn", "ReadOnlyPolicyArn"} <= set(outputs)


def test_the_iam_api_has_the_firewall_and_policies_to_call_it(iam_api: Template) -> None:
    [association] = iam_api.find_resources("AWS::WAFv2::WebACLAssociation").values()
    [stage_id] = iam_api.find_resources("AWS::ApiGateway::Stage")
    assert stage_id in json.dumps(association["Properties"]["ResourceArn"])
    policies = {p["Properties"]["ManagedPolicyName"]: p["Properties"]["PolicyDocument"]["Statement"]
                for p in iam_api.find_resources("AWS::IAM::ManagedPolicy").values()}
    assert set(policies) == {f"kilele-{STAGE}-api-invoke", f"kilele-{STAGE}-api-read-only"}
    for name, statements in policies.items():
        [statement] = statements
        assert statement["Action"] == "execute-api:Invoke" and statement["Effect"] == "Allow"
        resource = json.dumps(statement["Resource"])
        assert (f"/{STAGE}/GET/*" in resource) == name.endswith("read-only")
        assert f"/{STAGE}/*/*" in resource or name.endswith("read-only")


def test_each_stack_stays_under_cloudformation_resource_limit(template: Template, iam_api: Template) -> None:
    for t in (template, iam_api):
        assert len(t.to_json()["Resources"]) <= 450  # 500 is CloudFormation's hard limit; keep room for routes
