"""The CloudWatch dashboard operators open first: API, API Lambda, table throttling, train-job
workflows (Step Functions executions), the trials queue, serving (per-app predict metrics,
SageMaker endpoints, the serving-requests queue) and continuous tests (dashboard_ct.py)."""
from __future__ import annotations

from typing import Mapping, Optional

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .dashboard_ct import add_continuous_test_widgets

PERIOD = Duration.minutes(5)

# chalicelib/adapters/cloudwatch_metrics.py writes its EMF records here, with dimensions stage and
# app; Powertools adds `service` (POWERTOOLS_SERVICE_NAME: kilele-api for predict, kilele-serving
# for the queue consumer). A SEARCH schema must name the full dimension set.
SERVING_NAMESPACE = "Kilele"
SERVING_SCHEMA = "{Kilele,app,service,stage}"
# SageMaker's per-variant endpoint metrics (Invocations, ModelLatency in microseconds, ...).
SAGEMAKER_SCHEMA = "{AWS/SageMaker,EndpointName,VariantName}"


def build_dashboard(
    scope: Construct,
    stage: str,
    api_stage: apigw.Stage,
    function: lambda_.IFunction,
    table_names: Mapping[str, str],
    *,
    state_machines: Optional[Mapping[str, sfn.IStateMachine]] = None,
    trials_queue: Optional[sqs.IQueue] = None,
    serving_queue: Optional[sqs.IQueue] = None,
    serving_function: Optional[lambda_.IFunction] = None,
) -> cw.Dashboard:
    """Dashboard ``kilele-{stage}``; ``table_names`` maps logical table names to deployed ones,
    ``state_machines`` logical state machine names to the machines. ``serving_queue`` (the
    serving-requests queue) and ``serving_function`` (its consumer) add the serving rows."""
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
    if serving_queue is not None:
        _add_serving_widgets(dashboard, stage, serving_queue, serving_function)
    add_continuous_test_widgets(dashboard, stage)
    return dashboard


def _add_serving_widgets(
    dashboard: cw.Dashboard, stage: str, queue: sqs.IQueue, function: Optional[lambda_.IFunction],
) -> None:
    """Predict requests of every app of the stage, the stage's SageMaker endpoints, the queue API."""
    dashboard.add_widgets(
        cw.GraphWidget(
            title="Serving: predict requests, errors, defaults (all apps)",
            width=12,
            left=[
                _search_sum(f"SUM({_serving_search(stage, 'Requests', 'Sum')})", "requests"),
                _search_sum(f"SUM({_serving_search(stage, 'Errors', 'Sum')})", "errors"),
                _search_sum(f"SUM({_serving_search(stage, 'Defaults', 'Sum')})", "defaults"),
            ],
        ),
        cw.GraphWidget(
            title="Serving: requests per app",
            width=12,
            # One line per (app, service): predict through the API and through the queue.
            left=[_search_sum(_serving_search(stage, "Requests", "Sum"), "")],
        ),
    )
    dashboard.add_widgets(
        cw.GraphWidget(
            title="Serving: latency p50 per app (ms)",
            width=12,
            left=[_search_sum(_serving_search(stage, "Latency", "p50"), "")],
        ),
        cw.GraphWidget(
            title="Serving: latency p99 per app (ms)",
            width=12,
            left=[_search_sum(_serving_search(stage, "Latency", "p99"), "")],
        ),
    )
    dashboard.add_widgets(
        cw.GraphWidget(
            title="SageMaker endpoints: invocations and errors",
            width=12,
            left=[
                _search_sum(_sagemaker_search(stage, "Invocations", "Sum"), ""),
                _search_sum(f"SUM({_sagemaker_search(stage, 'Invocation4XXErrors', 'Sum')})", "4xx (all endpoints)"),
                _search_sum(f"SUM({_sagemaker_search(stage, 'Invocation5XXErrors', 'Sum')})", "5xx (all endpoints)"),
            ],
        ),
        cw.GraphWidget(
            title="SageMaker endpoints: ModelLatency p99 (µs)",
            width=12,
            left=[_search_sum(_sagemaker_search(stage, "ModelLatency", "p99"), "")],
        ),
    )
    queue_widgets: list[cw.IWidget] = [
        cw.GraphWidget(
            title="Serving-requests queue depth",
            width=12,
            left=[
                queue.metric_approximate_number_of_messages_visible(label="waiting", period=PERIOD),
                queue.metric_approximate_number_of_messages_not_visible(label="in flight", period=PERIOD),
            ],
            right=[queue.metric_approximate_age_of_oldest_message(
                label="age of oldest (s)", statistic="Maximum", period=PERIOD,
            )],
        ),
    ]
    if function is not None:
        queue_widgets.append(cw.GraphWidget(
            title="Serving-requests consumer: errors, throttles, duration p99",
            width=12,
            left=[
                function.metric_errors(label="errors", period=PERIOD),
                function.metric_throttles(label="throttles", period=PERIOD),
            ],
            right=[function.metric_duration(label="duration p99", statistic="p99", period=PERIOD)],
        ))
    dashboard.add_widgets(*queue_widgets)


def _serving_search(stage: str, metric: str, statistic: str) -> str:
    return (
        f"SEARCH('{SERVING_SCHEMA} MetricName=\"{metric}\" stage=\"{stage}\"', "
        f"'{statistic}', {int(PERIOD.to_seconds())})"
    )


def _sagemaker_search(stage: str, metric: str, statistic: str) -> str:
    # EndpointName=kilele-<stage> without quotes is a partial (token) match: the endpoints whose
    # name holds the tokens "kilele", "<stage>" in order, i.e. the kilele-{stage}-<job> endpoints.
    return (
        f"SEARCH('{SAGEMAKER_SCHEMA} MetricName=\"{metric}\" EndpointName=kilele-{stage}', "
        f"'{statistic}', {int(PERIOD.to_seconds())})"
    )


def _search_sum(expression: str, label: str) -> cw.MathExpression:
    """A SEARCH (one line per series found; ``label=""`` keeps each series' own label) or a
    SUM(SEARCH) (one line)."""
    return cw.MathExpression(expression=expression, using_metrics={}, label=label, period=PERIOD)


def _throttled_requests(label: str, table_name: str) -> cw.MathExpression:
    # ThrottledRequests only exists per (table, operation); SUM(SEARCH) folds every operation
    # into one line per table without listing operations or juggling metric ids.
    search = (
        f"SEARCH('{{AWS/DynamoDB,TableName,Operation}} MetricName=\"ThrottledRequests\" "
        f"TableName=\"{table_name}\"', 'Sum', {int(PERIOD.to_seconds())})"
    )
    return cw.MathExpression(expression=f"SUM({search})", using_metrics={}, label=label, period=PERIOD)
