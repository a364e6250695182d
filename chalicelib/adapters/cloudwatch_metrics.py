"""Per-app request metrics to CloudWatch through Powertools' embedded metric format."""
from __future__ import annotations

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit


class CloudWatchMetricsSink:
    """One EMF record per predict request (CloudWatch extracts the metrics from the log line)."""

    def __init__(self, namespace: str = "Kilele", stage: str = "dev"):
        self.namespace = namespace
        self.stage = stage

    def emit(self, app: str, latency_ms: float, queries: int, error: bool, default: bool) -> None:
        metrics = EphemeralMetrics(namespace=self.namespace)
        metrics.add_dimension(name="stage", value=self.stage)
        metrics.add_dimension(name="app", value=app)
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Queries", unit=MetricUnit.Count, value=queries)
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=int(error))
        metrics.add_metric(name="Defaults", unit=MetricUnit.Count, value=int(default))
        metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
        metrics.flush_metrics()
