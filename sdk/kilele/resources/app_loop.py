"""The loop (issue 12 item 6): an app's retrain policy and its timeline."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from kilele._args import _segment
from kilele._http import HttpClient


class AppLoopMixin(HttpClient):
    """Retrain an app when a continuous test on its traffic breaches a chosen monitor."""

    def set_retrain_policy(self, app: str, monitors: list[str],
                           dataset: Union[str, Mapping[str, str]] = "labelled_captured_traffic",
                           budget: Optional[Mapping[str, float]] = None, deploy: bool = False,
                           holdout_dataset_id: Optional[str] = None) -> dict[str, Any]:
        """When a monitor of ``monitors`` (e.g. ``["drift"]``) is breached by a continuous test
        scheduled on the app's traffic, start a train job with the app's latest train job's
        configuration on ``dataset`` (``{"dataset_id": ...}``, or ``"labelled_captured_traffic"``:
        the captured queries that have labels), with ``budget`` over that job's. Returns the policy."""
        body: dict[str, Any] = {"monitors": list(monitors), "dataset": dict(dataset) if isinstance(dataset, Mapping)
                                else dataset, "deploy": bool(deploy)}
        if budget is not None:
            body["budget"] = dict(budget)
        if holdout_dataset_id is not None:
            body["holdout_dataset_id"] = holdout_dataset_id
        return self._request("PUT", f"/apps/{_segment(app)}/retrain-policy", json=body)

    def get_retrain_policy(self, app: str) -> dict[str, Any]:
        """The app's retrain policy, with ``retrain``: the last retrain it started (or None)."""
        return self._request("GET", f"/apps/{_segment(app)}/retrain-policy")

    def remove_retrain_policy(self, app: str) -> None:
        """Remove the app's retrain policy (a retrain already started runs on, unwatched)."""
        self._request("DELETE", f"/apps/{_segment(app)}/retrain-policy")

    def get_app_timeline(self, app: str) -> list[dict[str, Any]]:
        """Each step of the app's retrain loop, oldest first: ``{"time", "step", "reason", "data"}``
        (``policy_set``, ``breach_seen``, ``retrain_started``, ``retrain_skipped``, ``retrain_failed``...)."""
        return list(self._request("GET", f"/apps/{_segment(app)}/timeline"))


__all__ = ["AppLoopMixin"]
