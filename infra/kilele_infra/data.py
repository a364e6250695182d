"""Where Kilele keeps its data: the DynamoDB tables, S3 buckets and SQS queues (each with its
dead-letter queue) of chalicelib/resources.py, the same definitions the local stack provisions."""
from __future__ import annotations

from typing import Optional

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib import resources
from chalicelib.capture_format import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX
from chalicelib.resources import RESOURCES, BucketSpec, Key, QueueSpec, TableSpec

from .naming import pascal, resource_name

# What Table.grant_read_write_data allows, less the stream reads nothing here does.
TABLE_DATA_ACTIONS = [
    "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
    "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem",
]

#: Captured traffic older than this moves to S3 Intelligent-Tiering (docs/continuous-tests.md, Storage).
CAPTURE_TIERING_DAYS = 30

ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: Optional[Key]) -> Optional[dynamodb.Attribute]:
    return dynamodb.Attribute(name=key.name, type=ATTRIBUTE_TYPES[key.type]) if key else None


class Data(Construct):
    """Owns every table, bucket and queue of ``RESOURCES`` (queues marked ``local_only`` excepted).

    Tables are ``kilele-{stage}-{name}``, on demand, with point-in-time recovery; buckets get a
    CloudFormation-chosen name; both are RETAIN. Queues are ``kilele-{stage}-{name}`` with a
    ``-dlq`` dead-letter queue (5 receives).

    Exposes, by logical name (``resources.*.name``): ``tables``, ``buckets``, ``queues``; and
    ``data_bucket``, ``trials_queue``, ``serving_queue`` for the constructs that need one of them;
    ``grant_table_data`` for functions that read and write every table.

    KileleStack keeps this construct out of the logical ids (see naming.flat_logical_id), so the
    tables, buckets and queues keep the ids they had before it existed: a changed id would
    replace a table.
    """

    def __init__(self, scope: Construct, construct_id: str, *, stage: str) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        self.tables = {spec.name: self._table(spec) for spec in RESOURCES.tables}
        self.buckets = {spec.name: self._bucket(spec) for spec in RESOURCES.buckets}
        self.queues = {spec.name: self._queue(spec) for spec in RESOURCES.queues if not spec.local_only}
        self._capture_lifecycle()

    @property
    def data_bucket(self) -> s3.Bucket:
        return self.buckets[resources.DATA_BUCKET.name]

    @property
    def trials_queue(self) -> sqs.Queue:
        return self.queues[resources.TRIALS_QUEUE.name]

    @property
    def serving_queue(self) -> sqs.Queue:
        return self.queues[resources.SERVING_REQUESTS_QUEUE.name]

    def grant_table_data(self, grantee: iam.IGrantable) -> None:
        """Read and write items of every table and query its indexes, in one statement.

        Table.grant_read_write_data per table writes two statements per table (items, streams):
        with nine tables and the other grants the role's inline policy passed IAM's 10 KB limit and
        CDK split it into an overflow managed policy. The stage's tables by name pattern
        (``kilele-{stage}-*`` and their indexes): two ARNs however many tables there are (listing
        each of twenty put the API role's policy past that limit again)."""
        tables = Stack.of(self).format_arn(service="dynamodb", resource="table",
                                           resource_name=resource_name(self.stage, "*"))
        iam.Grant.add_to_principal(grantee=grantee, actions=TABLE_DATA_ACTIONS,
                                   resource_arns=[tables, f"{tables}/index/*"])

    def _capture_lifecycle(self) -> None:
        """Captured traffic and ground truth (chalicelib/capture_format.py: hourly partitions under
        capture/ and ground-truth/) move to S3 Intelligent-Tiering after CAPTURE_TIERING_DAYS: a
        schedule reads only the hours since its last run, a retrain the labelled ones; older
        partitions are rarely read but stay instant to read and are never deleted here."""
        for prefix in (CAPTURE_PREFIX, GROUND_TRUTH_PREFIX):
            self.data_bucket.add_lifecycle_rule(
                id=f"{prefix}-intelligent-tiering", prefix=f"{prefix}/",
                transitions=[s3.Transition(storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                                           transition_after=Duration.days(CAPTURE_TIERING_DAYS))])

    def _table(self, spec: TableSpec) -> dynamodb.Table:
        table = dynamodb.Table(
            self, f"{pascal(spec.name)}Table",
            table_name=resource_name(self.stage, spec.name),
            partition_key=_attribute(spec.hash_key),
            sort_key=_attribute(spec.range_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=spec.ttl_attribute,
            removal_policy=RemovalPolicy.RETAIN,  # user data outlives the stack
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.hash_key),
                sort_key=_attribute(index.range_key),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table

    def _bucket(self, spec: BucketSpec) -> s3.Bucket:
        # No bucket_name: names are global, so CloudFormation picks one and the app gets it
        # from the environment.
        return s3.Bucket(
            self, f"{pascal(spec.name)}Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
            # Browsers upload datasets straight to S3 with presigned PUT/POST; ETag is exposed so
            # multipart uploads can collect part ids.
            cors=[s3.CorsRule(
                allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.POST],
                allowed_origins=["*"],
                allowed_headers=["*"],
                exposed_headers=["ETag"],
                max_age=3000,
            )],
            lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7))],
        )

    def _queue(self, spec: QueueSpec) -> sqs.Queue:
        dead_letters = sqs.Queue(
            self, f"{pascal(spec.name)}DeadLetterQueue",
            queue_name=resource_name(self.stage, f"{spec.name}-dlq"),
            retention_period=Duration.days(14),
            enforce_ssl=True,
        )
        return sqs.Queue(
            self, f"{pascal(spec.name)}Queue",
            queue_name=resource_name(self.stage, spec.name),
            visibility_timeout=Duration.seconds(spec.visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=dead_letters),
            enforce_ssl=True,
        )
