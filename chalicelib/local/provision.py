"""Creates the tables, buckets and queues of chalicelib/resources.py in an AWS endpoint
(moto locally; the same specs feed infra/ on AWS). Idempotent."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from chalicelib.resources import RESOURCES, Resources, TableSpec
from chalicelib.settings import Settings


def _key_schema(hash_key: Any, range_key: Any) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key.name, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return schema


def create_table_request(spec: TableSpec, table_name: str) -> dict[str, Any]:
    """The DynamoDB CreateTable request for a spec."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": _key_schema(spec.hash_key, spec.range_key),
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": type_} for name, type_ in spec.attribute_definitions().items()
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.hash_key, index.range_key),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in spec.indexes
        ]
    return request


LOCAL_ROLE_ARN = "arn:aws:iam::123456789012:role/kilele-local-workflows"


@dataclass
class Provisioned:
    """What the local stack needs to know about the resources it created."""

    queue_urls: dict[str, str] = field(default_factory=dict)
    state_machine_arns: dict[str, str] = field(default_factory=dict)


def provision(settings: Settings, aws: Optional[Any] = None, resources: Resources = RESOURCES) -> Provisioned:
    """Create every resource that does not exist yet (state machines rendered for local use),
    through ``aws`` (an :class:`~chalicelib.adapters.aws.AwsClients`; default: one built from
    the settings)."""
    if aws is None:
        from chalicelib.adapters.aws import AwsClients

        aws = AwsClients(settings.region, settings.aws_endpoint_url, settings.aws_access_key_id,
                         settings.aws_secret_access_key, settings.aws_service_endpoints)
    dynamodb, s3, sqs = aws.client("dynamodb"), aws.client("s3"), aws.client("sqs")

    existing_tables = set(dynamodb.list_tables().get("TableNames", []))
    for spec in resources.tables:
        name = settings.resource_name(spec.name)
        if name not in existing_tables:
            dynamodb.create_table(**create_table_request(spec, name))
            dynamodb.get_waiter("table_exists").wait(TableName=name)
            if spec.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )

    existing_buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in resources.buckets:
        name = settings.data_bucket if bucket.name == "data" else settings.resource_name(bucket.name)
        if name not in existing_buckets:
            s3.create_bucket(Bucket=name)

    provisioned = Provisioned()
    for queue in resources.queues:
        provisioned.queue_urls[queue.name] = sqs.create_queue(
            QueueName=settings.resource_name(queue.name),
            Attributes={"VisibilityTimeout": str(queue.visibility_timeout_seconds)},
        )["QueueUrl"]

    if resources.state_machines:
        from chalicelib.workflows.render import render_local

        sfn = aws.client("stepfunctions")
        existing = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
        values = {
            "TrialsQueueUrl": provisioned.queue_urls.get("trials", ""),
            "MaxTrialsPerExecution": settings.max_trials_per_execution,
        }
        for machine in resources.state_machines:
            name = settings.resource_name(machine.name)
            definition = render_local(machine.template, values, provisioned.queue_urls["lambda-shim"])
            if name in existing:
                sfn.update_state_machine(stateMachineArn=existing[name], definition=definition)
                provisioned.state_machine_arns[machine.name] = existing[name]
            else:
                provisioned.state_machine_arns[machine.name] = sfn.create_state_machine(
                    name=name, definition=definition, roleArn=LOCAL_ROLE_ARN
                )["stateMachineArn"]
    if settings.events_uri.startswith("eventbridge://") and resources is RESOURCES:
        _provision_event_bus(settings, aws)
    return provisioned


def _provision_event_bus(settings: Settings, aws: Any) -> None:
    """The bus, the log group and the rule delivering Kilele's events to it, as
    infra/kilele_infra/events.py deploys them: GET /events reads that log group (the EventBridge
    twin answers 503 without it)."""
    from chalicelib.wiring_events import events_bus, events_log_group

    events, logs = aws.client("events"), aws.client("logs")
    bus, group = events_bus(settings), settings.events_log_group or events_log_group(settings)
    if bus not in {b["Name"] for b in events.list_event_buses().get("EventBuses", [])}:
        events.create_event_bus(Name=bus)
    if not logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups"):
        logs.create_log_group(logGroupName=group)
    rule = f"{bus}-to-log"
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": ["kilele"]}))
    account = aws.client("sts").get_caller_identity()["Account"]
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[
        {"Id": "log", "Arn": f"arn:aws:logs:{settings.region}:{account}:log-group:{group}"}])
