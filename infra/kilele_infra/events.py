"""Events and schedules (issue 12).

``Events``: the stage's event bus ``kilele-{stage}-events``, where every job's state changes and
monitor breaches are published (chalicelib/adapters/events/eventbridge.py; schema in
docs/events.md); a rule that delivers every Kilele event on it to the log group
``/aws/events/kilele-{stage}-events`` (what ``GET /events`` reads), with the log group's resource
policy; and the example users copy: a rule sending failed jobs and breached monitors to the SNS
topic ``kilele-{stage}-alerts`` (subscribe an address to it to be told).

``Schedules``: the schedule group ``kilele-{stage}-schedules`` (chalicelib/adapters/schedules/
eventbridge.py creates schedules there), the schedule Lambda ``kilele-{stage}-run-schedule``
(``app.run_schedule``) every schedule invokes, and the role EventBridge Scheduler assumes to
invoke it (only from this account's schedules of that group).

Every Kilele function gets the environment naming them (:meth:`environment`) and may publish;
the API may read the events log and manage the group's schedules (:func:`grant_events_and_schedules`).
"""
from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from constructs import Construct

from chalicelib import resources
from chalicelib.entities.events import EVENT_SOURCE

from .data import Data
from .naming import resource_name
from .runtime import FunctionFactory, StateMachineArns

RUN_SCHEDULE_HANDLER = "app.run_schedule"
RUN_SCHEDULE_TIMEOUT = Duration.seconds(300)
#: The statuses the example alert rule forwards: a job that failed, a monitor that breached.
ALERT_STATUSES = ["ERRORED", "FAILING", "FAILED", "BREACHED"]


class Events(Construct):
    """The bus, the rule that logs its Kilele events, the log group, and the example alert rule."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str) -> None:
        super().__init__(scope, construct_id)
        # Names, not references: the environment of every function names them (see environment()).
        self.bus_name = resource_name(stage, resources.EVENT_BUS)
        self.log_group_name = f"/aws/events/{self.bus_name}"  # as chalicelib.wiring_events.events_log_group
        self.bus = events.EventBus(self, "Bus", event_bus_name=self.bus_name)
        self.log_group = logs.LogGroup(self, "EventsLog", log_group_name=self.log_group_name,
                                       retention=logs.RetentionDays.THREE_MONTHS)
        # EventBridge writes to a log group only if the group's resource policy lets it.
        logs.ResourcePolicy(self, "EventsLogPolicy", policy_statements=[iam.PolicyStatement(
            principals=[iam.ServicePrincipal("events.amazonaws.com"), iam.ServicePrincipal("delivery.logs.amazonaws.com")],
            actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn])])
        # A plain CloudFormation target: CDK's CloudWatchLogGroup target would add a custom-resource Lambda.
        self.log_rule = events.CfnRule(
            self, "LogEventsRule", event_bus_name=self.bus.event_bus_name,
            description="Kilele: every Kilele event -> the events log group (GET /events reads it)",
            event_pattern={"source": [EVENT_SOURCE]},
            targets=[events.CfnRule.TargetProperty(id="EventsLog", arn=self.log_group.log_group_arn)])
        self.alerts = sns.Topic(self, "Alerts", topic_name=resource_name(stage, "alerts"))
        # The example of docs/events.md: an ordinary rule; copy it with your own pattern and target.
        self.alert_rule = events.Rule(
            self, "AlertRule", event_bus=self.bus,
            description="Kilele: a job failed or a monitor breached -> the alerts topic",
            event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail={"status": ALERT_STATUSES}),
            targets=[targets.SnsTopic(self.alerts)])

    def environment(self) -> dict[str, str]:
        return {"KILELE_EVENTS_URI": f"eventbridge://{self.bus_name}", "KILELE_EVENTS_LOG_GROUP": self.log_group_name}


class Schedules(Construct):
    """The schedule group, the schedule Lambda and the role EventBridge Scheduler invokes it as."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, functions: FunctionFactory, data: Data,
                 state_machine_arns: StateMachineArns) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.group_name = resource_name(stage, resources.SCHEDULE_GROUP)
        self.group = scheduler.CfnScheduleGroup(self, "Group", name=self.group_name)
        # A fixed name, so every function's environment can name its ARN without referring to it
        # (the schedule Lambda's own environment names it too: a reference would be a cycle).
        self.function_name = resource_name(stage, "run-schedule")
        self.function_arn = stack.format_arn(service="lambda", resource="function", resource_name=self.function_name,
                                             arn_format=ArnFormat.COLON_RESOURCE_NAME)
        self.function: lambda_.Function = functions.function(
            self, "RunScheduleFunction", handler=RUN_SCHEDULE_HANDLER,
            environment=functions.environment("kilele-schedules"), timeout=RUN_SCHEDULE_TIMEOUT)
        self.function.node.default_child.function_name = self.function_name  # type: ignore[union-attr]
        # A firing runs an incremental continuous test: the records, the data, its workflow.
        data.grant_table_data(self.function)
        data.data_bucket.grant_read_write(self.function)
        state_machine_arns.grant_executions(self.function)
        self.group_schedules_arn = stack.format_arn(service="scheduler", resource="schedule",
                                                    resource_name=f"{self.group_name}/*",
                                                    arn_format=ArnFormat.SLASH_RESOURCE_NAME)
        self.role = iam.Role(
            self, "SchedulerRole",
            description="Kilele: EventBridge Scheduler invokes the schedule Lambda as this role",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={
                # Only this account's schedules of this stage's group (the confused-deputy guard).
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": self.group_schedules_arn},
            }))
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"],
                                                    resources=[self.function_arn, f"{self.function_arn}:*"]))

    def environment(self) -> dict[str, str]:
        return {"KILELE_SCHEDULER_URI": f"eventbridge://{self.group_name}",
                "KILELE_SCHEDULE_TARGET_ARN": self.function_arn, "KILELE_SCHEDULER_ROLE_ARN": self.role.role_arn}

    def manage_statements(self) -> list[iam.PolicyStatement]:
        """Create, change, read and delete the group's schedules, handing them the scheduler role."""
        return [
            iam.PolicyStatement(actions=["scheduler:CreateSchedule", "scheduler:UpdateSchedule",
                                         "scheduler:DeleteSchedule", "scheduler:GetSchedule"],
                                resources=[self.group_schedules_arn]),
            iam.PolicyStatement(actions=["scheduler:ListSchedules"], resources=["*"]),
            iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}),
        ]


def grant_events_and_schedules(stack: Stack, events_: Events, schedules: Schedules,
                               readers: list[lambda_.Function]) -> list[lambda_.Function]:
    """Every Kilele function of ``stack`` (a handler in app.py or chalicelib) gets the events'
    and schedules' environment and may publish; ``readers`` (the API, the schedule Lambda) also
    read the events log and manage schedules. Returns the functions given the environment.

    The grants are two managed policies of their own, attached to those roles: added to each
    role's inline policy they would push the API's past IAM's inline size (CDK would then move
    statements to an overflow policy of its own)."""
    kilele_functions = []
    for node in stack.node.find_all():
        if isinstance(node, lambda_.Function):
            handler = getattr(node.node.default_child, "handler", "") or ""
            if handler.startswith(("app.", "chalicelib.")):
                kilele_functions.append(node)
    for function in kilele_functions:
        for key, value in {**events_.environment(), **schedules.environment()}.items():
            function.add_environment(key, value)
    iam.ManagedPolicy(
        events_, "PublishEvents", description="Kilele: publish job state changes and monitor breaches to the bus",
        statements=[iam.PolicyStatement(actions=["events:PutEvents"], resources=[events_.bus.event_bus_arn])],
        roles=[function.role for function in kilele_functions if function.role is not None])
    iam.ManagedPolicy(
        schedules, "ReadEventsAndManageSchedules",
        description="Kilele: list the events (their log group) and manage the stage's schedules",
        statements=[iam.PolicyStatement(actions=["logs:FilterLogEvents"], resources=[events_.log_group.log_group_arn]),
                    *schedules.manage_statements()],
        roles=[reader.role for reader in readers if reader.role is not None])
    return kilele_functions


__all__ = ["ALERT_STATUSES", "Events", "RUN_SCHEDULE_HANDLER", "Schedules", "grant_events_and_schedules"]
