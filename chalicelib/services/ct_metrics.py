"""Continuous-test metrics: what each continuous-test job's end tells CloudWatch (issue 12 item 3:
the dashboard shows the CT metrics per app).

:class:`ContinuousTestService`'s record steps call :meth:`CTMetrics.job_recorded` and
:meth:`CTMetrics.job_failed`; this turns the job's bins into a
:class:`~chalicelib.ct_metrics_format.CTMetricsRecord` (names and dimensions are documented there)
and hands it to the sink port. A sink that fails is logged, never raised: the job's record and
its events are what count, the metrics are a view of them.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

from chalicelib.ct_metrics_format import BinValue, CTMetricsRecord
from chalicelib.entities.continuous import CTInstance
from chalicelib.errors import DomainError
from chalicelib.ports_continuous import CTMetricsSink
from chalicelib.services import Clock, utc_now

log = logging.getLogger(__name__)


def bin_failed(summary: dict[str, Any]) -> bool:
    """A bin with a test that FAILED (its summary's ``status_counts``)."""
    counts = summary.get("status_counts") or {}
    return isinstance(counts, dict) and _number(counts.get("fail")) > 0


def monitored_values(instance: CTInstance, tested: Iterable[dict[str, Any]]) -> tuple[BinValue, ...]:
    """Each tested bin's value of each metric an enabled monitor of ``instance`` watches (bins
    or metrics without a value are left out)."""
    metrics = sorted({m.metric for m in instance.monitors if m.enabled})
    out = []
    for summary in tested:
        start = _start(summary.get("time_bin_start"))
        values = summary.get("metrics") or {}
        if start is None or not isinstance(values, dict):
            continue
        for metric in metrics:
            value = values.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append(BinValue(start, metric, float(value)))
    return tuple(out)


class CTMetrics:
    """``app_of(instance id)``: the app whose captured traffic the instance's schedule tests, or None."""

    def __init__(self, sink: CTMetricsSink, app_of: Callable[[str], Optional[str]], clock: Clock = utc_now):
        self._sink = sink
        self._app_of = app_of
        self._clock = clock

    def job_recorded(self, instance: CTInstance, tested: list[dict[str, Any]], new_breaches: int) -> None:
        """A job that SUCCEEDED: its bins (the worker's summaries) and its new breaches."""
        self._emit(CTMetricsRecord(
            app=self._app(instance), ct_instance_id=instance.id, at=self._clock(), bins_tested=len(tested),
            bins_failed=sum(1 for b in tested if bin_failed(b)), monitors_breached=new_breaches,
            values=monitored_values(instance, tested)))

    def job_failed(self, instance: CTInstance) -> None:
        self._emit(CTMetricsRecord(app=self._app(instance), ct_instance_id=instance.id, at=self._clock(),
                                   job_failed=True))

    def _app(self, instance: CTInstance) -> Optional[str]:
        try:
            return self._app_of(instance.id)
        except DomainError as e:  # the schedule's record unreadable: the metrics still go out, app "-"
            log.warning("could not tell which app CT instance %s tests: %s", instance.id, e)
            return None

    def _emit(self, record: CTMetricsRecord) -> None:
        try:
            self._sink.emit(record)
        except DomainError as e:
            log.warning("could not emit the metrics of CT instance %s: %s", record.ct_instance_id, e)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _start(value: Any) -> Optional[datetime]:
    if not isinstance(value, str):
        return None
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Bins are UTC (docs/continuous-tests.md); a start written without its offset is read so.
    return start if start.tzinfo is not None else start.replace(tzinfo=timezone.utc)


__all__ = ["CTMetrics", "bin_failed", "monitored_values"]
