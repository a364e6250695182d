"""Continuous-test instances (seed 002's ``RIMECTInstance``).

::

    job = client.start_continuous_test_from_reference(config_with_continuous_info, project_id=pid)
    job.get_status(wait_until_finish=True)          # a StressTestJob: results have time bins
    ct = client.get_active_ct_instance_for_project(pid)
    job = ct.start_incremental_continuous_test({"eval_path": "new.csv", "timestamp_col": "ts"})
    ct.list_breaches(); ct.list_monitors(); ct.update_monitor("drift", window_bins=3)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

from kilele._args import _segment
from kilele.stress import CustomImage, StressTestJob

if TYPE_CHECKING:  # pragma: no cover
    from kilele.client import Client


def job_options(rime_managed_image: Optional[str], custom_image: Optional[CustomImage],
                ram_request_megabytes: Optional[int], cpu_request_millicores: Optional[int]) -> dict[str, Any]:
    """The optional job fields of a start request (those given)."""
    if custom_image is not None and not isinstance(custom_image, CustomImage):
        raise TypeError("custom_image must be a kilele.stress.CustomImage (kilele.rime.CustomImage), "
                        f"got {type(custom_image).__name__}")
    optional = {"rime_managed_image": rime_managed_image,
                "custom_image": custom_image.to_dict() if custom_image is not None else None,
                "ram_request_megabytes": ram_request_megabytes, "cpu_request_millicores": cpu_request_millicores}
    return {key: value for key, value in optional.items() if value is not None}


class CTInstance:
    """A CT instance: ``ct_instance_id``, and ``info``, the instance as last fetched (name,
    project, bin size, whether it is active, its monitors...)."""

    def __init__(self, client: "Client", ct_instance_id: str, info: Optional[Mapping[str, Any]] = None):
        self._client = client
        self.ct_instance_id = str(ct_instance_id)
        self.info: dict[str, Any] = dict(info or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ct_instance_id={self.ct_instance_id!r}, active={self.info.get('active')!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CTInstance) and other.ct_instance_id == self.ct_instance_id

    def __hash__(self) -> int:
        return hash(self.ct_instance_id)

    @property
    def _path(self) -> str:
        return f"/ct-instances/{_segment(self.ct_instance_id)}"

    def refresh(self) -> dict[str, Any]:
        """Fetch the instance and keep it in ``info``."""
        self.info = dict(self._client._request("GET", self._path))
        return self.info

    def activate_ct_instance(self) -> None:
        """Make this instance its project's active one (the project's other one is deactivated)."""
        self.info = dict(self._client._request("POST", f"{self._path}/activate"))

    def deactivate_ct_instance(self) -> None:
        """Make this instance inactive."""
        self.info = dict(self._client._request("POST", f"{self._path}/deactivate"))

    def start_incremental_continuous_test(self, test_run_config: Mapping[str, Any],
                                          rime_managed_image: Optional[str] = None,
                                          custom_image: Optional[CustomImage] = None,
                                          ram_request_megabytes: Optional[int] = None,
                                          cpu_request_millicores: Optional[int] = None) -> StressTestJob:
        """Test the time bins of new data (``{"eval_path", "timestamp_col"}``; a local
        ``eval_path`` is uploaded) against this instance's reference and model. A bin tested
        before is tested again with the union of its rows. Returns the job."""
        if not isinstance(test_run_config, Mapping):
            raise TypeError(f"test_run_config must be a dict, got {type(test_run_config).__name__}")
        config = dict(self._client._upload_config_files({"data_info": dict(test_run_config)})["data_info"])
        body = {"test_run_config": config, **job_options(rime_managed_image, custom_image, ram_request_megabytes,
                                                         cpu_request_millicores)}
        job = self._client._request("POST", f"{self._path}/continuous-tests", json=body)
        return StressTestJob(self._client, job["job_id"], job)

    def list_monitors(self) -> list[dict[str, Any]]:
        """The monitors: ``{"monitor_id", "metric", "operator", "bound", "aggregation",
        "window_bins", "severity", "enabled", "description"}`` each."""
        return list(self._client._request("GET", f"{self._path}/monitors"))

    def update_monitor(self, monitor_id: str, **changes: Any) -> dict[str, Any]:
        """Change a monitor's fields (``bound=0.5``, ``window_bins=3``, ``enabled=False``...)."""
        return dict(self._client._request("PATCH", f"{self._path}/monitors/{_segment(monitor_id)}", json=changes))

    def create_monitor(self, metric: str, operator: str, bound: float, **fields: Any) -> dict[str, Any]:
        """Add a monitor of ``metric`` (a key of a bin's ``metrics``, e.g.
        ``"model_performance:accuracy"``): a breach when its aggregation ``operator`` ``bound``."""
        body = {"metric": metric, "operator": operator, "bound": bound, **fields}
        return dict(self._client._request("POST", f"{self._path}/monitors", json=body))

    def list_breaches(self) -> list[dict[str, Any]]:
        """The monitors' breaches, newest bin first (severity, bin, metric, value, report link)."""
        return list(self._client._request("GET", f"{self._path}/breaches"))

    def list_bins(self) -> list[dict[str, Any]]:
        """Every bin's latest summary (its metrics, severity, the job that tested it), oldest first."""
        return list(self._client._request("GET", f"{self._path}/bins"))

    def set_schedule(self, expression: str, source: Mapping[str, Any]) -> dict[str, Any]:
        """Run an incremental continuous test on a schedule (``"rate(1 hour)"``, ``"cron(0 6 * * ? *)"``,
        UTC) over the data that arrived since the last run: ``source`` is ``{"app": "<app name>"}``
        (the app's captured traffic, with the labels sent so far) or ``{"s3_prefix": "s3://..."}``
        (new files under a prefix of your uploads). Replaces the instance's schedule, if any."""
        body = {"expression": expression, "source": dict(source)}
        return dict(self._client._request("PUT", f"{self._path}/schedule", json=body))

    def get_schedule(self) -> dict[str, Any]:
        """The schedule: expression, source, watermark and recent ``runs`` (STARTED with the job,
        SKIPPED while a job ran, NO_DATA, FAILED with why), newest first."""
        return dict(self._client._request("GET", f"{self._path}/schedule"))

    def remove_schedule(self) -> None:
        """Remove the instance's schedule."""
        self._client._request("DELETE", f"{self._path}/schedule")


__all__ = ["CTInstance", "job_options"]
