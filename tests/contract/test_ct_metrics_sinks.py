"""The continuous-test metrics contract: one suite run against both twins of
:class:`chalicelib.ports_continuous.CTMetricsSink`.

- **emf**: :class:`EmfCTMetrics`, the AWS twin, writing to a stream as Lambda's standard output
  (each line a log event CloudWatch reads as Embedded Metric Format);
- **local**: :class:`LocalCTMetricsLog`, the same documents in the local stack's data directory.

The contract: what a record says arrives as one EMF document per line, in the order written,
each valid for CloudWatch (a JSON object whose ``_aws`` directive names the namespace, one
dimension set whose every key is a top-level string, and metric definitions whose every name is
a top-level number or list of numbers, with a millisecond timestamp); the twins write the same
documents for the same record; records written from two threads never interleave; a sink that
cannot write raises Unavailable.
"""
from __future__ import annotations

import io
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.ct_metrics.emf import EmfCTMetrics
from chalicelib.adapters.ct_metrics.local import LOG_FILE, LocalCTMetricsLog
from chalicelib.ct_metrics_format import (BIN_DIMENSIONS, BIN_METRIC, JOB_DIMENSIONS, JOB_METRICS, NAMESPACE,
                                          BinValue, CTMetricsRecord)
from chalicelib.errors import Unavailable

from unit.services.fakes import T0

STAGE = "test"
#: CloudWatch's EMF limits (CloudWatch_Embedded_Metric_Format_Specification): 30 dimensions in a
#: set, 100 metrics in a directive, names of 1-255 characters; dimension values non-empty.
MAX_DIMENSIONS, MAX_METRICS, MAX_NAME = 30, 100, 255


class EmfTwin:
    name = "emf"

    def __init__(self, tmp_path: Path) -> None:
        self.stream = io.StringIO()
        self.sink = EmfCTMetrics(STAGE, stream=self.stream)

    def written(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def break_it(self) -> None:
        self.stream.close()


class LocalTwin:
    name = "local"

    def __init__(self, tmp_path: Path) -> None:
        self.directory = tmp_path / "metrics"
        self.sink = LocalCTMetricsLog(self.directory, STAGE)

    def written(self) -> list[dict[str, Any]]:
        # A new log on the same directory reads what this one wrote (it outlives the stack's process).
        return LocalCTMetricsLog(self.directory, STAGE).read()

    def break_it(self) -> None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self.directory.write_text("a file where the directory should be")


@pytest.fixture(params=[EmfTwin, LocalTwin], ids=lambda t: t.name)
def twin(request, tmp_path):
    return request.param(tmp_path)


def record(instance: str = "ct1", app: str | None = "fraud", bins: int = 3) -> CTMetricsRecord:
    values = tuple(BinValue(T0 - timedelta(hours=bins - i), metric, float(i))
                   for i in range(bins) for metric in ("category_worst:Drift", "category_worst:Abnormal Inputs"))
    return CTMetricsRecord(app=app, ct_instance_id=instance, at=T0, bins_tested=bins, bins_failed=1,
                           monitors_breached=2, values=values)


def check_emf(doc: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, list[float]]]:
    """(sorted dimension names, metric name -> values) of a valid EMF document, else AssertionError."""
    assert isinstance(doc["_aws"]["Timestamp"], int) and doc["_aws"]["Timestamp"] > 10**12  # milliseconds
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    [dimensions] = directive["Dimensions"]
    assert len(dimensions) <= MAX_DIMENSIONS
    for name in dimensions:
        assert isinstance(doc[name], str) and doc[name].strip(), name
    assert 1 <= len(directive["Metrics"]) <= MAX_METRICS
    metrics = {}
    for definition in directive["Metrics"]:
        name = definition["Name"]
        assert 1 <= len(name) <= MAX_NAME and definition["Unit"] in ("Count", "None")
        values = doc[name] if isinstance(doc[name], list) else [doc[name]]
        assert values and all(isinstance(v, (int, float)) for v in values)
        metrics[name] = values
    return tuple(sorted(dimensions)), metrics


def test_a_record_arrives_as_valid_emf_documents_in_order(twin):
    twin.sink.emit(record())
    docs = twin.written()
    assert len(docs) == 1 + 6
    dims, metrics = check_emf(docs[0])
    assert dims == tuple(sorted(JOB_DIMENSIONS)) and set(metrics) == set(JOB_METRICS)
    assert metrics["BinsTested"] == [3] and metrics["MonitorsBreached"] == [2] and metrics["JobsFailed"] == [0]
    assert docs[0]["_aws"]["Timestamp"] == int(T0.timestamp() * 1000)
    points = []
    for doc in docs[1:]:
        dims, metrics = check_emf(doc)
        assert dims == tuple(sorted(BIN_DIMENSIONS)) and set(metrics) == {BIN_METRIC}
        assert (doc["app"], doc["ct_instance"], doc["stage"]) == ("fraud", "ct1", STAGE)
        points.append((doc["_aws"]["Timestamp"], doc["metric"], metrics[BIN_METRIC][0]))
    assert points == [(int((T0 - timedelta(hours=3 - i)).timestamp() * 1000), m, float(i))
                      for i in range(3) for m in ("category_worst:Drift", "category_worst:Abnormal Inputs")]


def test_both_twins_write_the_same_documents(tmp_path):
    emf, local = EmfTwin(tmp_path), LocalTwin(tmp_path)
    for twin_ in (emf, local):
        twin_.sink.emit(record())
        twin_.sink.emit(record("ct2", app=None, bins=1))
    assert emf.written() == local.written()


def test_records_from_two_threads_never_interleave(twin):
    def emit_many(instance: str) -> None:
        for _ in range(20):
            twin.sink.emit(record(instance, bins=5))

    threads = [threading.Thread(target=emit_many, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    docs = twin.written()
    assert len(docs) == 2 * 20 * 11
    for first in range(0, len(docs), 11):  # each record's eleven documents together, job counts first
        group = docs[first:first + 11]
        assert "BinsTested" in group[0] and {d["ct_instance"] for d in group} == {group[0]["ct_instance"]}


def test_a_sink_that_cannot_write_is_unavailable(twin):
    twin.break_it()
    with pytest.raises(Unavailable, match="could not write the continuous-test metrics"):
        twin.sink.emit(record())


def test_the_local_log_skips_a_line_a_crash_cut_short(tmp_path):
    log = LocalCTMetricsLog(tmp_path, STAGE)
    log.emit(record(bins=1))
    with (tmp_path / LOG_FILE).open("a") as f:
        f.write('{"_aws": {"Timest')
    assert len(log.read()) == 3
    log.emit(record(bins=1))  # the next record starts a line of its own
    assert len(log.read()) == 6
    assert (tmp_path / LOG_FILE).read_text().count("\n") == 7  # no empty line between whole records
