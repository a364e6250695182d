"""The continuous-test rows of the ``kilele-{stage}`` dashboard (issue 12 item 3: the CloudWatch
dashboard shows the CT metrics per app).

The metrics are those chalicelib/ct_metrics_format.py writes (names, dimensions and units are
documented there and in docs/continuous-tests.md "Metrics"). Apps and CT instances are made after
deploy, so every graph is a SEARCH expression: a new app's (or instance's) line appears once its
first job is recorded, without a redeploy. Each line is one (app, CT instance[, metric]), labelled
by CloudWatch with those dimension values. The graphs look back 14 days by default, as far as
CloudWatch takes a bin's value (a continuous test runs hourly or daily: the dashboard's default
3 hours would show at most one point).
"""
from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

from chalicelib.ct_metrics_format import BIN_DIMENSIONS, BIN_METRIC, JOB_DIMENSIONS, NAMESPACE
from chalicelib.entities.continuous import DEFAULT_MONITOR_CATEGORIES

#: Bins are an hour or a day: an hour per point.
CT_PERIOD = Duration.hours(1)
#: How far back the continuous-test graphs look when the dashboard opens (CloudWatch keeps a
#: bin's value only when its bin started within the last 14 days).
CT_START = "-P14D"
#: The level the default monitors breach at (``category_worst:<category> >= 2``: a test FAILED).
FAILED_LEVEL = 2


def add_continuous_test_widgets(dashboard: cw.Dashboard, stage: str) -> None:
    """Jobs' counts per app / CT instance, each default category's worst level per bin with the
    default monitors' bound, and every monitored metric per bin."""
    dashboard.add_widgets(
        _graph("Continuous tests: bins tested per app / CT instance",
               [_search(stage, JOB_DIMENSIONS, "BinsTested", "Sum")]),
        _graph("Continuous tests: bins with a failed test per app / CT instance",
               [_search(stage, JOB_DIMENSIONS, "BinsFailed", "Sum")]),
    )
    dashboard.add_widgets(
        _graph("Continuous tests: monitors breached per app / CT instance",
               [_search(stage, JOB_DIMENSIONS, "MonitorsBreached", "Sum")]),
        _graph("Continuous tests: failed jobs per app / CT instance",
               [_search(stage, JOB_DIMENSIONS, "JobsFailed", "Sum")]),
    )
    # The default monitors' metrics, one graph each: the level per bin (0 NONE .. 3 HIGH) and the
    # bound they breach at.
    level_graphs = [
        _graph(f"CT {category}: worst level per bin (per app / CT instance)",
               [_search(stage, BIN_DIMENSIONS, BIN_METRIC, "Maximum", metric=f"category_worst:{category}")],
               width=6, annotations=[cw.HorizontalAnnotation(value=FAILED_LEVEL, label="a test FAILED")],
               axis=cw.YAxisProps(min=0, max=3, show_units=False))
        for category in DEFAULT_MONITOR_CATEGORIES
    ]
    dashboard.add_widgets(*level_graphs)
    dashboard.add_widgets(
        _graph("Continuous tests: every monitored metric per bin (app / CT instance / metric)",
               [_search(stage, BIN_DIMENSIONS, BIN_METRIC, "Maximum")], width=24),
    )


def _graph(title: str, left: list[cw.IMetric], *, width: int = 12,
           annotations: list[cw.HorizontalAnnotation] | None = None,
           axis: cw.YAxisProps | None = None) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=left, width=width, start=CT_START, period=CT_PERIOD,
                          left_annotations=annotations, left_y_axis=axis)


def _search(stage: str, dimensions: tuple[str, ...], metric_name: str, statistic: str,
            metric: str | None = None) -> cw.MathExpression:
    """SEARCH over the stage's continuous-test metrics; ``label=""`` keeps each series' own
    label (its dimension values)."""
    # Names with characters other than letters and digits are quoted in a SEARCH schema.
    schema = ",".join(_quoted(n) for n in (NAMESPACE, *dimensions))
    terms = f'MetricName="{metric_name}" stage="{stage}"'
    if metric is not None:
        terms += f' metric="{metric}"'
    expression = f"SEARCH('{{{schema}}} {terms}', '{statistic}', {int(CT_PERIOD.to_seconds())})"
    return cw.MathExpression(expression=expression, using_metrics={}, label="", period=CT_PERIOD)


def _quoted(name: str) -> str:
    return name if name.isalnum() else f'"{name}"'


__all__ = ["CT_PERIOD", "CT_START", "add_continuous_test_widgets"]
