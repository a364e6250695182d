"""The CloudWatch dashboard operators open first: API, API Lambda, table throttling, train-job
workflows (Step Functions executions) and the trials queue."""
from __future__ import annotations

from typing import Mapping, Optional

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

PERIOD = Duration.minutes(5)


def build_dashboard(
    scope: Construct,
    stage: str,
    api_stage: apigw.Stage,
    function: lambda_.IFunction,
    table_names: Mapping[str, str],
    *,
    state_machines: Optional[Mapping[str, sfn.IStateMachine]] = None,
    trials_queue: Optional[sqs.IQueue] = None,
) -> cw.Dashboard:
    """Dashboard ``kilele-{stage}``; ``table_names`` maps logical table names to deployed ones,
    ``state_machines`` logical state machine names to the machines."""
    dashboard = cw.Dashboard(scope, "Dashboard", dashboard_name=f"kilele-{stage}")
    dashboard.add_widgets(
        cw.GraphWidget(
            title="API errors",
            left=[
                api_stage.metric_client_error(label="4xx", period=PERIOD),
                api_stage.metric_server_error(label="5xx", period=PERIOD),
            ],
        ),
        cw.GraphWidget(
            title="API latency",
            left=[
                api_stage.metric_latency(label="p50", statistic="p50", period=PERIOD),
                api_stage.metric_latency(label="p99", statistic="p99", period=PERIOD),
            ],
        ),
        cw.GraphWidget(title="API requests", left=[api_stage.metric_count(label="count", period=PERIOD)]),
    )
    dashboard.add_widgets(
        cw.GraphWidget(
            title="API Lambda errors and throttles",
            left=[
                function.metric_errors(label="errors", period=PERIOD),
                function.metric_throttles(label="throttles", period=PERIOD),
            ],
        ),
        cw.GraphWidget(
            title="API Lambda duration",
            left=[
                function.metric_duration(label="p50", statistic="p50", period=PERIOD),
                function.metric_duration(label="p99", statistic="p99", period=PERIOD),
            ],
        ),
    )
    dashboard.add_widgets(
        cw.GraphWidget(
            title="DynamoDB throttled requests",
            width=24,
            left=[_throttled_requests(logical, deployed) for logical, deployed in table_names.items()],
        )
    )
    for name, state_machine in (state_machines or {}).items():
        dashboard.add_widgets(
            cw.GraphWidget(
                title=f"{name} executions",
                width=12,
                left=[
                    state_machine.metric_started(label="started", period=PERIOD),
                    state_machine.metric_succeeded(label="succeeded", period=PERIOD),
                    state_machine.metric_failed(label="failed", period=PERIOD),
                    state_machine.metric_timed_out(label="timed out", period=PERIOD),
                ],
            ),
            cw.GraphWidget(
                title=f"{name} execution time",
                width=12,
                left=[
                    state_machine.metric_time(label="p50", statistic="p50", period=PERIOD),
                    state_machine.metric_time(label="p99", statistic="p99", period=PERIOD),
                ],
            ),
        )
    if trials_queue is not None:
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Trials queue depth",
                width=12,
                left=[
                    trials_queue.metric_approximate_number_of_messages_visible(label="waiting", period=PERIOD),
                    trials_queue.metric_approximate_number_of_messages_not_visible(label="in flight", period=PERIOD),
                ],
            ),
            cw.GraphWidget(
                title="Trials queue: age of oldest message (s)",
                width=12,
                left=[trials_queue.metric_approximate_age_of_oldest_message(
                    label="max", statistic="Maximum", period=PERIOD,
                )],
            ),
        )
    return dashboard


def _throttled_requests(label: str, table_name: str) -> cw.MathExpression:
    # ThrottledRequests only exists per (table, operation); SUM(SEARCH) folds every operation
    # into one line per table without listing operations or juggling metric ids.
    search = (
        f"SEARCH('{{AWS/DynamoDB,TableName,Operation}} MetricName=\"ThrottledRequests\" "
        f"TableName=\"{table_name}\"', 'Sum', {int(PERIOD.to_seconds())})"
    )
    return cw.MathExpression(expression=f"SUM({search})", using_metrics={}, label=label, period=PERIOD)
