"""The CloudWatch dashboard operators open first: API, API Lambda and table throttling."""
from __future__ import annotations

from typing import Mapping

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

PERIOD = Duration.minutes(5)


def build_dashboard(
    scope: Construct,
    stage: str,
    api_stage: apigw.Stage,
    function: lambda_.IFunction,
    table_names: Mapping[str, str],
) -> cw.Dashboard:
    """Dashboard ``kilele-{stage}``; ``table_names`` maps logical table names to deployed ones."""
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
    return dashboard


def _throttled_requests(label: str, table_name: str) -> cw.MathExpression:
    # ThrottledRequests only exists per (table, operation); SUM(SEARCH) folds every operation
    # into one line per table without listing operations or juggling metric ids.
    search = (
        f"SEARCH('{{AWS/DynamoDB,TableName,Operation}} MetricName=\"ThrottledRequests\" "
        f"TableName=\"{table_name}\"', 'Sum', {int(PERIOD.to_seconds())})"
    )
    return cw.MathExpression(expression=f"SUM({search})", using_metrics={}, label=label, period=PERIOD)
