"""Traffic capture (issue 12): an app's capture percentage, its predict answers with their query
ids, and ground-truth labels sent later by those ids."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Union

from kilele._args import _segment
from kilele._http import HttpClient
from kilele.resources.inference import _list, _plain

Labels = Union[Mapping[Any, Any], Iterable[Any]]


def _label_items(labels: Labels) -> list[dict[str, Any]]:
    """``{query_id: label}``, or ``[{"query_id", "label"}]`` / ``[(query_id, label)]``."""
    if isinstance(labels, Mapping):
        return [{"query_id": _plain(q), "label": _plain(label)} for q, label in labels.items()]
    items = []
    for item in labels:
        if isinstance(item, Mapping):
            items.append({"query_id": _plain(item.get("query_id")), "label": _plain(item.get("label"))})
        else:
            query_id, label = item
            items.append({"query_id": _plain(query_id), "label": _plain(label)})
    return items


class CaptureMixin(HttpClient):
    """Capture a sample of an app's predict traffic to S3 (SageMaker Data Capture's layout) and
    send its ground truth by query id."""

    def set_capture(self, app: str, percent: float) -> dict[str, Any]:
        """Capture ``percent`` (0-100; 0: off) of the app's predict requests. Returns the app."""
        return self._request("PATCH", f"/apps/{_segment(app)}", json={"capture_percent": float(percent)})

    def get_capture(self, app: str) -> dict[str, Any]:
        """The app's ``capture_percent`` and the S3 folders of its captured traffic
        (``capture_uri``) and labels (``ground_truth_uri``)."""
        return self._request("GET", f"/apps/{_segment(app)}/capture")

    def predict_with_ids(self, app: str, query: Any = None, queries: Optional[list[Any]] = None) -> dict[str, Any]:
        """Rafiki style, the whole answer: ``{"prediction", "query_id"}`` for one ``query``, or
        ``{"predictions", "query_ids"}`` for ``queries`` (plus ``default`` and
        ``default_explanation`` when the app's default output answered)."""
        if (query is None) == (queries is None):
            raise ValueError("give exactly one of query and queries")
        body = {"queries": _list(queries, "queries")} if queries is not None else {"query": _plain(query)}
        return self._request("POST", f"/apps/{_segment(app)}/predict", json=body)

    def send_labels(self, app: str, labels: Labels) -> dict[str, Any]:
        """Send ground truth of answered queries: ``{query_id: label}`` or a list of
        ``{"query_id", "label"}`` (at most 1000 a call). Returns ``{"app", "received",
        "capture_uri", "ground_truth_uri"}``."""
        return self._request("POST", f"/apps/{_segment(app)}/labels", json={"labels": _label_items(labels)})
