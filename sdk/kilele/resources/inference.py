"""Inference jobs (a train job's best trials served as one ensemble, Rafiki's calls) and the
predictions they answer (Rafiki, Clipper and Cluster Serving styles)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from kilele._args import StrOrEnum, _budget, _segment, _version
from kilele._http import HttpClient


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as plain lists and numbers (anything else as it is)."""
    return value.tolist() if hasattr(value, "tolist") else value


def _list(value: Any, name: str) -> list[Any]:
    value = _plain(value)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list, got {type(value).__name__}")
    return [_plain(item) for item in value]


class InferenceJobsMixin(HttpClient):
    """Create, list and stop inference jobs."""

    def create_inference_job(
        self, app: str, app_version: int = -1, budget: Optional[Mapping[StrOrEnum, Any]] = None
    ) -> dict[str, Any]:
        """Serve the best trial of each model of the STOPPED train job ``app`` v``app_version``
        (-1: the latest) as one ensemble. ``budget`` is ``{InferenceBudgetOption.GPU_COUNT: n}``.
        Returns ``{"id", "app", "app_version", "train_job_id", "predictor_host", "query_host",
        "predictor_url", "status", "error"}``: ``POST http://{predictor_host}/predict`` (with your
        API key or token) is the app's predict route."""
        body = {"app": app, "app_version": int(_version(app_version)), "budget": _budget(budget)}
        return self._request("POST", "/inference-jobs", json=body)

    def get_inference_jobs_by_user(self, user_id: Optional[str] = None) -> list[dict[str, Any]]:
        """Inference jobs of a user (None: yours; other users' need an admin)."""
        return self._request("GET", "/inference-jobs", params={"user_id": user_id})

    def get_inference_jobs_of_app(self, app: str) -> list[dict[str, Any]]:
        """Your inference jobs of an app, oldest first."""
        return self._request("GET", f"/inference-jobs/{_segment(app)}")

    def get_inference_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """Seed 000's call: the newest inference job of ``app`` at ``app_version`` (-1: the newest
        version), whatever its status, with its ``workers``: each ``{"service_id", "status",
        "replicas", "trial", ...}`` plus ``restarts`` (how often the platform started the
        endpoint's server again after it died; None where the platform cannot count them, as on
        SageMaker) and ``last_restart`` (``{"reason", "at"}`` or None). An endpoint whose server
        keeps dying ends the job ERRORED, the reason in ``error``."""
        return self._request("GET", f"/inference-jobs/{_segment(app)}/{_version(app_version)}/latest")

    def get_running_inference_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """The running inference job of ``app`` at ``app_version`` (-1: the newest running one),
        with its ``workers`` (the trials of the ensemble)."""
        return self._request("GET", f"/inference-jobs/{_segment(app)}/{_version(app_version)}")

    def stop_inference_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """Stop the running inference job (its endpoint is deleted). Returns the STOPPED job."""
        return self._request("POST", f"/inference-jobs/{_segment(app)}/{_version(app_version)}/stop")

    def cleanup_inference_jobs(self) -> dict[str, Any]:
        """Admins: delete the endpoints (on SageMaker also endpoint configs and models) that no
        live inference job serves, e.g. left by failures. Returns ``{"deleted", "failed", "kept"}``."""
        return self._request("POST", "/jobs/cleanup-endpoints")


class PredictionsMixin(HttpClient):
    """Ask an app for predictions, and for its serving metrics."""

    def _predict(self, app: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", f"/apps/{_segment(app)}/predict", json=body)

    def predict(self, app: str, query: Any = None, queries: Optional[list[Any]] = None) -> Any:
        """Rafiki style: the prediction of one ``query``, or the list of predictions of ``queries``
        (give exactly one), from the version the app serves."""
        if (query is None) == (queries is None):
            raise ValueError("give exactly one of query and queries")
        if queries is not None:
            return self._predict(app, {"queries": _list(queries, "queries")})["predictions"]
        return self._predict(app, {"query": _plain(query)})["prediction"]

    def query(self, app: str, input: Any = None,  # noqa: A002 (Clipper's name)
              input_batch: Optional[list[Any]] = None) -> Any:
        """Clipper style: ``{"query_id", "output", "default"[, "default_explanation"]}`` for one
        ``input``, a list of those for ``input_batch`` (give exactly one). ``default`` is true
        when the app's default output answered (the latency SLO passed or no model was up)."""
        if (input is None) == (input_batch is None):
            raise ValueError("give exactly one of input and input_batch")
        if input_batch is not None:
            return self._predict(app, {"input_batch": _list(input_batch, "input_batch")})["batch_predictions"]
        return self._predict(app, {"input": _plain(input)})

    def predict_instances(self, app: str, instances: list[Any]) -> list[Any]:
        """Cluster Serving style: one prediction per instance (an instance may be a one-key
        object such as ``{"t": [1.0, 2.0]}``)."""
        return self._predict(app, {"instances": _list(instances, "instances")})["predictions"]

    def get_app_metrics(self, app: str, minutes: int = 60) -> list[dict[str, Any]]:
        """Requests, queries, errors, defaults, batch sizes and latency percentiles of the app
        over the last ``minutes`` (Cluster Serving's metrics shape)."""
        return self._request("GET", f"/apps/{_segment(app)}/metrics", params={"minutes": int(minutes)})
