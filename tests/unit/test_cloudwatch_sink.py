"""The CloudWatch metrics sink: one EMF record per request on stdout (Lambda ships it to CloudWatch)."""
from __future__ import annotations

import json

from chalicelib.adapters.cloudwatch_metrics import CloudWatchMetricsSink


def test_cloudwatch_sink_writes_one_emf_record(capsys):
    CloudWatchMetricsSink(namespace="KileleTest", stage="dev").emit("iris", 12.5, 3, error=False, default=True)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "KileleTest" and ["stage", "app"] in directive["Dimensions"]
    assert record["app"] == "iris" and record["Latency"] == [12.5] and record["Defaults"] == [1.0]
