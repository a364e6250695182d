"""Continuous tests' CloudWatch metrics, as Embedded Metric Format (EMF) documents (pure).

What an operator finds in the CloudWatch console (namespace ``Kilele/ContinuousTests``; the
dashboard ``kilele-<stage>`` graphs them; docs/continuous-tests.md "Metrics" lists them):

- per continuous-test job, at the time its record step ran, dimensions
  ``{app, ct_instance, service, stage}``: ``BinsTested``, ``BinsFailed`` (bins with a test that
  FAILED), ``MonitorsBreached`` (the job's new breaches) and ``JobsFailed`` (1 when the job
  failed, its other counts 0);
- per bin the job tested and per metric an enabled monitor of the instance watches, at the bin's
  start, dimensions ``{app, ct_instance, metric, service, stage}``: ``MetricValue`` (the bin's
  value of that metric, e.g. ``metric=category_worst:Drift``).

``app`` is the app whose captured traffic the instance's schedule tests, or ``-`` for an
instance tested on other data. ``service`` is always ``kilele-ct`` (set here, so the dimension
set does not depend on which Lambda's ``POWERTOOLS_SERVICE_NAME`` recorded the job: a SEARCH
schema must name the full set).

CloudWatch drops data points more than 14 days old or more than 2 hours ahead: a bin outside
that window (a continuous test of last year's data) gets no ``MetricValue``; it is still counted
in ``BinsTested`` and its values stay readable in ``GET /ct-instances/{id}/bins``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional

NAMESPACE = "Kilele/ContinuousTests"
SERVICE = "kilele-ct"
#: The ``app`` dimension of an instance that tests no app's captured traffic (no app is named ``-``).
NO_APP = "-"
JOB_METRICS = ("BinsTested", "BinsFailed", "MonitorsBreached", "JobsFailed")
BIN_METRIC = "MetricValue"
JOB_DIMENSIONS = ("app", "ct_instance", "service", "stage")
BIN_DIMENSIONS = ("app", "ct_instance", "metric", "service", "stage")
#: What CloudWatch accepts of a data point's timestamp, relative to now.
MAX_PAST = timedelta(days=14)
MAX_FUTURE = timedelta(hours=2)


@dataclass(frozen=True)
class BinValue:
    """One monitored metric's value in one bin."""

    time_bin_start: datetime
    metric: str
    value: float


@dataclass(frozen=True)
class CTMetricsRecord:
    """What one continuous-test job's end says to CloudWatch (see the module's docstring); ``at``:
    when the job was recorded (timezone-aware, as every bin start)."""

    app: Optional[str]
    ct_instance_id: str
    at: datetime
    bins_tested: int = 0
    bins_failed: int = 0
    monitors_breached: int = 0
    job_failed: bool = False
    values: tuple[BinValue, ...] = field(default_factory=tuple)


def emf_documents(record: CTMetricsRecord, stage: str) -> list[dict[str, Any]]:
    """The EMF documents of ``record``: the job's counts first, then one per bin value CloudWatch
    would keep (within ``MAX_PAST``/``MAX_FUTURE`` of ``record.at``, the record's time; finite
    values only)."""
    from aws_lambda_powertools.metrics import MetricUnit  # imported where documents are made (cold starts)

    app = record.app or NO_APP
    job = _metrics(record.at, stage=stage, app=app, ct_instance=record.ct_instance_id)
    for name, value in zip(JOB_METRICS, (record.bins_tested, record.bins_failed, record.monitors_breached,
                                         int(record.job_failed))):
        job.add_metric(name=name, unit=MetricUnit.Count, value=value)
    documents = [dict(job.serialize_metric_set())]
    for v in record.values:
        if not (record.at - MAX_PAST <= v.time_bin_start <= record.at + MAX_FUTURE) or not math.isfinite(v.value):
            continue
        point = _metrics(v.time_bin_start, stage=stage, app=app, ct_instance=record.ct_instance_id, metric=v.metric)
        point.add_metric(name=BIN_METRIC, unit=MetricUnit.NoUnit, value=v.value)
        documents.append(dict(point.serialize_metric_set()))
    return documents


def _metrics(at: datetime, **dimensions: str) -> Any:
    from aws_lambda_powertools.metrics import EphemeralMetrics

    # service given here, not read from POWERTOOLS_SERVICE_NAME: one dimension set everywhere.
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    for name, value in dimensions.items():
        metrics.add_dimension(name=name, value=value)
    metrics.timestamp = int(at.timestamp() * 1000)  # checked above; set_timestamp would warn on old bins
    return metrics


__all__ = ["BIN_DIMENSIONS", "BIN_METRIC", "BinValue", "CTMetricsRecord", "JOB_DIMENSIONS", "JOB_METRICS",
           "MAX_FUTURE", "MAX_PAST", "NAMESPACE", "NO_APP", "SERVICE", "emf_documents"]
