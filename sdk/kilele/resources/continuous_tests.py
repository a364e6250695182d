"""Continuous tests (seed 002's CT section): CT instances and the jobs that test time bins."""
from __future__ import annotations

import copy
from typing import Any, Mapping, Optional, Union

from kilele._args import _segment
from kilele.continuous import CTInstance, job_options
from kilele.resources.stress_tests import StressTestsMixin, _project_id
from kilele.stress import CustomImage, Project, StressTestJob


class ContinuousTestsMixin(StressTestsMixin):
    """``create_ct_instance``, ``get_ct_instance``, ``get_active_ct_instance_for_project``,
    ``list_ct_instances`` and ``start_continuous_test_from_reference``."""

    def create_ct_instance(self, name: str, bin_size_seconds: int, ot_test_run_id: str,
                           project_id: Union[str, Project]) -> CTInstance:
        """A new, inactive CT instance on the reference and model of your SUCCEEDED stress test
        run ``ot_test_run_id`` (``job.get_test_run_id()``), filed under ``project_id``;
        ``bin_size_seconds`` is 3600 (hourly) or 86400 (daily)."""
        body = {"name": name, "bin_size_seconds": bin_size_seconds, "ot_test_run_id": ot_test_run_id,
                "project_id": _project_id(project_id)}
        made = self._request("POST", "/ct-instances", json=body)
        return CTInstance(self, made["ct_instance_id"], made)  # type: ignore[arg-type]

    def get_ct_instance(self, ct_instance_id: str) -> CTInstance:
        """A CT instance by id (fetched now: an unknown one is a 404 here)."""
        found = self._request("GET", f"/ct-instances/{_segment(ct_instance_id)}")
        return CTInstance(self, found["ct_instance_id"], found)  # type: ignore[arg-type]

    def get_active_ct_instance_for_project(self, project_id: Union[str, Project]) -> CTInstance:
        """The project's active CT instance; a 404 (``NotFoundError``) when it has none."""
        found = self._request("GET", f"/projects/{_segment(_project_id(project_id))}/active-ct-instance")
        return CTInstance(self, found["ct_instance_id"], found)  # type: ignore[arg-type]

    def list_ct_instances(self, project_id: Union[str, Project]) -> list[CTInstance]:
        """A project's CT instances, oldest first."""
        found = self._request("GET", f"/projects/{_segment(_project_id(project_id))}/ct-instances")
        return [CTInstance(self, i["ct_instance_id"], i) for i in found]  # type: ignore[arg-type]

    def start_continuous_test_from_reference(
        self,
        test_run_config: Mapping[str, Any],
        project_id: Union[str, Project, None] = None,
        rime_managed_image: Optional[str] = None,
        custom_image: Optional[CustomImage] = None,
        ram_request_megabytes: Optional[int] = None,
        cpu_request_millicores: Optional[int] = None,
    ) -> StressTestJob:
        """Run the stress test on the config's reference and evaluation data, make a CT
        instance (active once the job SUCCEEDED) and test every time bin of the evaluation data.

        :param test_run_config: a stress test's config with ``continuous_info:
            {"timestamp_col", "bin_size": "hour" | "day", "reference"?: "fixed" |
            {"rolling_bins": N}}``; local paths are uploaded for you
        :returns: the job (its ``info["ct_instance_id"]`` is the instance's id)
        """
        if not isinstance(test_run_config, Mapping):
            raise TypeError(f"test_run_config must be a dict, got {type(test_run_config).__name__}")
        config = self._upload_config_files(copy.deepcopy(dict(test_run_config)))
        body: dict[str, Any] = {"test_run_config": config,
                                **job_options(rime_managed_image, custom_image, ram_request_megabytes,
                                              cpu_request_millicores)}
        if project_id is not None:
            body["project_id"] = _project_id(project_id)
        job = self._request("POST", "/continuous-tests", json=body)
        return StressTestJob(self, job["job_id"], job)  # type: ignore[arg-type]
