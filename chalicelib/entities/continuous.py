"""Continuous-test instances (seed 002's ``RIMECTInstance``), their monitors and the breaches found.

A CT instance follows one model on time-binned data against the reference of one finished
stress test (``ot_test_run_id``). Each continuous-test job it runs is a stress-test job (so it
is followed, logged and read like one); what the instance keeps across jobs is its
``source`` (the stress test's config as the user gave it: paths, model, label), the key of
every bin's rows so far (``history_key``), and its monitors and their breaches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from chalicelib.entities.accounts import iso_or_none

#: Seed 002: hourly and daily bins only.
BIN_SIZES = {3600: "hour", 86400: "day"}
AGGREGATIONS = ("max", "min", "mean", "last")
OPERATORS = (">=", ">", "<=", "<")
SEVERITIES = ("LOW", "MEDIUM", "HIGH")
#: Metric names whose value is a severity level (0 NONE … 3 HIGH): a breach of one takes the
#: level's name as its severity.
LEVEL_METRIC_PREFIXES = ("severity", "category_worst:", "category_severity:")
#: The continuous-test categories (STRESS-TESTS.md): one default monitor each.
DEFAULT_MONITOR_CATEGORIES = ("Abnormal Inputs", "Drift", "Model Performance", "Subset Performance")
#: Breaches kept on an instance (the newest); every breach is also an event.
MAX_BREACHES = 200


@dataclass
class Monitor:
    """A metric of each bin (a key of the bin summaries' ``metrics``: ``category_worst:Drift``,
    ``model_performance:accuracy``, ``test:numeric_drift``…), aggregated over the last
    ``window_bins`` bins tested (``max``, ``min``, ``mean``, ``last``), compared with ``bound``
    by ``operator``: true is a breach."""

    id: str
    metric: str
    operator: str
    bound: float
    aggregation: str = "max"
    window_bins: int = 1
    severity: str = "MEDIUM"
    enabled: bool = True
    description: str = ""

    def aggregate(self, values: list[Optional[float]]) -> Optional[float]:
        """The aggregation of the window's values (None ones skipped; None if none is left)."""
        known = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not known:
            return None
        if self.aggregation == "max":
            return max(known)
        if self.aggregation == "min":
            return min(known)
        if self.aggregation == "mean":
            return sum(known) / len(known)
        return known[-1]

    def breached(self, value: Optional[float]) -> bool:
        if value is None:
            return False
        return {">=": value >= self.bound, ">": value > self.bound, "<=": value <= self.bound,
                "<": value < self.bound}[self.operator]

    def breach_severity(self, value: float) -> str:
        """A level metric's breach is as severe as the level reached; others use ``severity``."""
        if self.metric.startswith(LEVEL_METRIC_PREFIXES) and value >= 1:
            return SEVERITIES[min(3, int(round(value))) - 1]
        return self.severity

    def to_dict(self) -> dict[str, Any]:
        return {"monitor_id": self.id, "metric": self.metric, "operator": self.operator, "bound": self.bound,
                "aggregation": self.aggregation, "window_bins": self.window_bins, "severity": self.severity,
                "enabled": self.enabled, "description": self.description}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Monitor":
        return cls(id=d["monitor_id"], metric=d["metric"], operator=d["operator"], bound=float(d["bound"]),
                   aggregation=d.get("aggregation", "max"), window_bins=int(d.get("window_bins", 1)),
                   severity=d.get("severity", "MEDIUM"), enabled=bool(d.get("enabled", True)),
                   description=d.get("description") or "")


def default_monitors() -> list[Monitor]:
    """One monitor per continuous-test category: its worst case in the bin reached MEDIUM (a
    FAIL; the breach is HIGH when the level was)."""
    out = []
    for category in DEFAULT_MONITOR_CATEGORIES:
        slug = category.lower().replace(" ", "-")
        out.append(Monitor(id=slug, metric=f"category_worst:{category}", operator=">=", bound=2.0,
                           aggregation="max", window_bins=1, severity="MEDIUM",
                           description=f"a {category} test failed in the bin (severity MEDIUM or HIGH)"))
    return out


@dataclass
class Breach:
    """A monitor found breached on a bin (kept on the instance and published as an event)."""

    monitor_id: str
    metric: str
    value: float
    operator: str
    bound: float
    severity: str
    time_bin_start: str
    time_bin_end: str
    job_id: str
    report: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"monitor_id": self.monitor_id, "metric": self.metric, "value": self.value,
                "operator": self.operator, "bound": self.bound, "severity": self.severity,
                "time_bin_start": self.time_bin_start, "time_bin_end": self.time_bin_end, "job_id": self.job_id,
                "report": self.report, "created_at": iso_or_none(self.created_at)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Breach":
        return cls(monitor_id=d["monitor_id"], metric=d["metric"], value=float(d["value"]),
                   operator=d["operator"], bound=float(d["bound"]), severity=d["severity"],
                   time_bin_start=d["time_bin_start"], time_bin_end=d["time_bin_end"], job_id=d["job_id"],
                   report=d["report"], created_at=datetime.fromisoformat(d["created_at"]))


@dataclass
class CTInstance:
    """One CT instance. ``source``: the stress test's config as given (``data_info`` without
    ``eval_path``, ``model_info``, ``model_task``, ``tests_config``, ``run_name``, and
    ``continuous_info.reference``); ``running_job_id``: the CT job in progress (one at a time,
    so two jobs never merge into the same bins); ``error``: why the last job failed."""

    id: str
    owner_id: str
    project_id: str
    name: str
    bin_size_seconds: int
    ot_test_run_id: str
    created_at: datetime
    source: dict[str, Any]
    active: bool = False
    timestamp_col: Optional[str] = None
    history_key: Optional[str] = None
    bins_key: Optional[str] = None
    running_job_id: Optional[str] = None
    last_job_id: Optional[str] = None
    error: Optional[str] = None
    monitors: list[Monitor] = field(default_factory=default_monitors)
    breaches: list[Breach] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ct_instance_id": self.id, "name": self.name, "project_id": self.project_id,
                "owner_id": self.owner_id, "bin_size_seconds": self.bin_size_seconds,
                "bin_size": BIN_SIZES.get(self.bin_size_seconds), "ot_test_run_id": self.ot_test_run_id,
                "active": self.active, "timestamp_col": self.timestamp_col,
                "created_at": iso_or_none(self.created_at), "running_job_id": self.running_job_id,
                "last_job_id": self.last_job_id, "error": self.error,
                "reference": (self.source.get("continuous_info") or {}).get("reference", "fixed"),
                "monitors": [m.to_dict() for m in self.monitors], "num_breaches": len(self.breaches)}


__all__ = ["AGGREGATIONS", "BIN_SIZES", "Breach", "CTInstance", "DEFAULT_MONITOR_CATEGORIES", "MAX_BREACHES",
           "Monitor", "OPERATORS", "SEVERITIES", "default_monitors"]
