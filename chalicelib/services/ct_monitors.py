"""Monitors of a CT instance, evaluated over its bins (pure functions).

A bin summary is what the worker reports per bin tested (``kilele_stress.continuous``'s
``bin_summaries``): ``{"time_bin_start", "time_bin_end", "severity", "status_counts", "metrics"}``.
The instance keeps every bin's latest summary, by ``time_bin_start``; after a job, each monitor
is evaluated on each bin that job tested, over the window of the ``window_bins`` bins up to it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

from chalicelib.entities.continuous import AGGREGATIONS, OPERATORS, SEVERITIES, Breach, Monitor
from chalicelib.errors import InvalidInput

#: A monitor's metric: a key of a bin summary's ``metrics`` (letters, digits, ``_:.&-`` and spaces).
METRIC_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_:.&\- ]{0,199}$"
MAX_WINDOW_BINS = 1000
MAX_MONITORS = 50


@dataclass(frozen=True)
class Finding:
    monitor: Monitor
    value: float
    time_bin_start: str
    time_bin_end: str

    def reason(self) -> str:
        m = self.monitor
        return (f"{m.metric}: {m.aggregation} over {m.window_bins} bin(s) up to {self.time_bin_start} is "
                f"{self.value:.4g}, {m.operator} {m.bound:g}")


def evaluate(monitors: Iterable[Monitor], bins: Mapping[str, Mapping[str, Any]],
             tested: Iterable[str]) -> list[Finding]:
    """The breaches of the enabled ``monitors`` on each bin of ``tested`` (bin starts), each over
    the ``window_bins`` known bins up to it (ISO starts of one instance sort in time order)."""
    order = sorted(bins)
    found = []
    for start in sorted(set(tested)):
        if start not in bins:
            continue
        position = order.index(start)
        for m in monitors:
            if not m.enabled:
                continue
            window = order[max(0, position - m.window_bins + 1):position + 1]
            value = m.aggregate([(bins[s].get("metrics") or {}).get(m.metric) for s in window])
            if m.breached(value):
                found.append(Finding(m, float(value), start, str(bins[start].get("time_bin_end", ""))))
    return found


def merge_breaches(kept: list[Breach], findings: list[Finding], tested: Iterable[str], job_id: str,
                   report: str, now: datetime, limit: int) -> tuple[list[Breach], list[Breach]]:
    """The instance's breaches after a job: those of bins the job re-tested are replaced by the
    job's findings (a bin's latest results are what it is judged on); returns (all, new)."""
    tested = set(tested)
    new = [Breach(monitor_id=f.monitor.id, metric=f.monitor.metric, value=f.value, operator=f.monitor.operator,
                  bound=f.monitor.bound, severity=f.monitor.breach_severity(f.value), time_bin_start=f.time_bin_start,
                  time_bin_end=f.time_bin_end, job_id=job_id, report=report, created_at=now) for f in findings]
    keep = [b for b in kept if b.time_bin_start not in tested]
    merged = sorted(keep + new, key=lambda b: (b.time_bin_start, b.monitor_id))
    return merged[-limit:], new


def monitor_from_fields(monitor_id: str, fields: Mapping[str, Any], base: Optional[Monitor] = None) -> Monitor:
    """A monitor from ``base`` (or nothing, for a new one) with ``fields`` changed; InvalidInput
    naming the field for a bad value (the API's schema checks types; this checks the rules)."""
    values = base.to_dict() if base is not None else {"monitor_id": monitor_id, "aggregation": "max",
                                                      "window_bins": 1, "severity": "MEDIUM", "enabled": True}
    unknown = set(fields) - {"metric", "operator", "bound", "aggregation", "window_bins", "severity", "enabled",
                             "description"}
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]}: unknown monitor field")
    values.update({k: v for k, v in fields.items() if v is not None})
    for key in ("metric", "operator", "bound"):
        if values.get(key) is None:
            raise InvalidInput(f"{key}: a new monitor needs metric, operator and bound")
    if not re.match(METRIC_PATTERN, str(values["metric"])):
        raise InvalidInput(f"metric: {values['metric']!r} is not a metric name (e.g. 'category_worst:Drift')")
    checks = (("operator", OPERATORS), ("aggregation", AGGREGATIONS), ("severity", SEVERITIES))
    for key, allowed in checks:
        if values[key] not in allowed:
            raise InvalidInput(f"{key}: {values[key]!r} is not one of {', '.join(allowed)}")
    window = values["window_bins"]
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW_BINS:
        raise InvalidInput(f"window_bins: a whole number from 1 to {MAX_WINDOW_BINS}")
    bound = values["bound"]
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound != bound or abs(bound) == float("inf"):
        raise InvalidInput("bound: a finite number")
    return Monitor.from_dict(values)


__all__ = ["Finding", "evaluate", "merge_breaches", "monitor_from_fields", "METRIC_PATTERN", "MAX_MONITORS",
           "MAX_WINDOW_BINS"]
