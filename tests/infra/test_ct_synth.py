"""Synthesis of what issue 12 deploys beside the events and schedules (test_events_synth.py): the
dashboard's continuous-test widgets, graphing exactly the metrics chalicelib/ct_metrics_format.py
writes, and the capture layout in the data bucket (capture/ and ground-truth/, tiered after 30
days, never expired). Each on a small stack of its own construct (a second synth of the whole
stack costs CI about a minute); test_synth.py checks KileleStack includes them."""
from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_cloudwatch as cw  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from chalicelib.capture_format import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX  # noqa: E402
from chalicelib.ct_metrics_format import BinValue, CTMetricsRecord, emf_documents  # noqa: E402
from chalicelib.entities.continuous import DEFAULT_MONITOR_CATEGORIES  # noqa: E402
from kilele_infra.dashboard_ct import add_continuous_test_widgets  # noqa: E402
from kilele_infra.data import CAPTURE_TIERING_DAYS, Data  # noqa: E402

STAGE = "test"
SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\} (?P<terms>.*)', '(?P<statistic>\w+)', (?P<period>\d+)\)")


@pytest.fixture(scope="module")
def template() -> Template:
    """The data resources and the continuous-test rows of a dashboard, as KileleStack makes them."""
    stack = Stack(App(), f"kilele-{STAGE}")
    Data(stack, "Data", stage=STAGE)
    add_continuous_test_widgets(cw.Dashboard(stack, "Dashboard", dashboard_name=f"kilele-{STAGE}"), STAGE)
    return Template.from_stack(stack)


def _dashboard(template: Template) -> dict[str, Any]:
    """The dashboard's body as JSON (the references CloudFormation fills in left as REF)."""
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, dict):  # Fn::Join of literal text and references
        body = "".join(part if isinstance(part, str) else "REF" for part in body["Fn::Join"][1])
    return json.loads(body)


def _ct_widgets(template: Template) -> dict[str, dict[str, Any]]:
    widgets = {w["properties"]["title"]: w for w in _dashboard(template)["widgets"]
               if w["type"] == "metric" and "SEARCH" in json.dumps(w) and "ContinuousTests" in json.dumps(w)}
    assert widgets
    return widgets


def _searches(widget: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    for row in widget["properties"]["metrics"]:
        for item in row:
            if isinstance(item, dict) and "expression" in item:
                match = SEARCH.fullmatch(item["expression"])
                assert match, item["expression"]
                found.append({**match.groupdict(), "label": item.get("label")})
    return found


def _schema(search: dict[str, str]) -> tuple[str, frozenset[str]]:
    namespace, *dimensions = [name.strip('"') for name in search["schema"].split(",")]
    return namespace, frozenset(dimensions)


def _terms(search: dict[str, str]) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', search["terms"]))


def _emitted() -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc)
    return emf_documents(CTMetricsRecord(app="fraud", ct_instance_id="ct1", at=now, bins_tested=1,
                                         values=(BinValue(now, "category_worst:Drift", 3.0),)), STAGE)


def test_every_ct_graph_searches_exactly_what_a_continuous_test_emits(template: Template) -> None:
    emitted = {}
    for doc in _emitted():
        [directive] = doc["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]:
            emitted[metric["Name"]] = (directive["Namespace"], frozenset(directive["Dimensions"][0]))
    graphed = set()
    for title, widget in _ct_widgets(template).items():
        assert widget["properties"]["start"] == "-P14D" and widget["properties"]["period"] == 3600, title
        for search in _searches(widget):
            terms = _terms(search)
            # A SEARCH schema must name the full dimension set of what it finds: an exact match.
            assert _schema(search) == emitted[terms["MetricName"]], title
            assert terms["stage"] == STAGE and search["period"] == "3600", title
            # No label of its own: one line per app / CT instance [/ metric], named by its dimensions.
            assert search["label"] in (None, ""), title
            graphed.add(terms["MetricName"])
    assert graphed == set(emitted) == {"BinsTested", "BinsFailed", "MonitorsBreached", "JobsFailed", "MetricValue"}


def test_each_default_monitors_category_has_its_level_graph_with_the_bound(template: Template) -> None:
    widgets = _ct_widgets(template)
    for category in DEFAULT_MONITOR_CATEGORIES:
        [(title, widget)] = [(t, w) for t, w in widgets.items() if t.startswith(f"CT {category}:")]
        [search] = _searches(widget)
        assert _terms(search)["metric"] == f"category_worst:{category}" and search["statistic"] == "Maximum"
        assert widget["properties"]["annotations"]["horizontal"][0]["value"] == 2, title
    everything = [w for t, w in widgets.items() if "every monitored metric" in t]
    assert len(everything) == 1 and "metric" not in _terms(_searches(everything[0])[0])


def test_captured_traffic_and_ground_truth_are_tiered_never_expired(template: Template) -> None:
    [bucket] = [b for b in template.find_resources("AWS::S3::Bucket").values()
                if any(r.get("Prefix") == f"{CAPTURE_PREFIX}/"
                       for r in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", []))]
    rules = {r.get("Prefix"): r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    for prefix in (CAPTURE_PREFIX, GROUND_TRUTH_PREFIX):
        rule = rules[f"{prefix}/"]
        assert rule["Status"] == "Enabled"
        assert rule["Transitions"] == [{"StorageClass": "INTELLIGENT_TIERING", "TransitionInDays": CAPTURE_TIERING_DAYS}]
        assert "ExpirationInDays" not in rule and "NoncurrentVersionExpiration" not in rule
    # The bucket's own rule is still there, for every prefix.
    assert any("AbortIncompleteMultipartUpload" in r and r.get("Prefix") is None for r in rules.values())
