"""Stress tests (seed 002): starting them, with local files uploaded for you, and listing them.

A test run config names its data and model by path (``data_info.ref_path``,
``data_info.eval_path``, ``model_info.path``). ``s3://`` and ``kilele://`` URIs go to the API as
they are; a local path is uploaded first (``POST /stress-tests/uploads`` and a presigned POST)
and its ``uri`` is sent in its place, in a copy: the caller's dict is never changed.
"""
from __future__ import annotations

import copy
import os
from enum import Enum
from typing import Any, Iterable, Mapping, Optional, Union

from kilele._args import _enum_value
from kilele._transfer import TransferMixin
from kilele.stress import CustomImage, Project, StressTestJob

#: Where a test run config names files: (section, key).
CONFIG_PATH_KEYS = (("data_info", "ref_path"), ("data_info", "eval_path"), ("model_info", "path"))


def is_local_path(value: Any) -> bool:
    """A path on this machine (not a URI such as ``s3://…`` or ``kilele://datasets/…``)."""
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and "://" not in value


def local_paths(config: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """``{(section, key): path}`` of the config's local paths; a missing file raises
    FileNotFoundError naming the key."""
    found: dict[tuple[str, str], str] = {}
    for section, key in CONFIG_PATH_KEYS:
        block = config.get(section)
        if not isinstance(block, Mapping) or not is_local_path(block.get(key)):
            continue
        path = os.fspath(block[key])
        if not os.path.isfile(path):
            why = "is a directory, not a file" if os.path.isdir(path) else "does not exist"
            raise FileNotFoundError(f"{section}.{key}: {path!r} {why} (a local file to upload, or an "
                                    "s3:// or kilele://datasets/ URI)")
        found[(section, key)] = path
    return found


def _project_id(project_id: Union[str, Project, None]) -> Optional[str]:
    return project_id.project_id if isinstance(project_id, Project) else project_id


class StressTestsMixin(TransferMixin):
    """``start_stress_test`` (alias ``start_stress_test_job``), ``list_stress_test_jobs``,
    ``get_stress_test_job`` and ``upload_stress_test_file``."""

    def start_stress_test(
        self,
        test_run_config: Mapping[str, Any],
        project_id: Union[str, Project, None] = None,
        rime_managed_image: Optional[str] = None,
        custom_image: Optional[CustomImage] = None,
        ram_request_megabytes: Optional[int] = None,
        cpu_request_millicores: Optional[int] = None,
    ) -> StressTestJob:
        """Start a stress test of a model on reference and evaluation data.

        :param test_run_config: ``{"run_name", "data_info": {"label_col", "ref_path",
            "eval_path", ...}, "model_info": {"path"} | {"trial_id"} | {"app", "app_version"},
            "model_task"?, "tests_config"?, "random_seed"?}``; local paths are uploaded for you
        :param project_id: the project to file the run under (default: your ``default`` project)
        :param rime_managed_image: the managed image to run on (none exist yet: any is a 404)
        :param custom_image: a :class:`CustomImage` to run on
        :param ram_request_megabytes: RAM request (API default 4000; the limit is twice it)
        :param cpu_request_millicores: CPU request (API default 1500; the limit is twice it)
        :returns: the :class:`StressTestJob`
        """
        if not isinstance(test_run_config, Mapping):
            raise TypeError(f"test_run_config must be a dict, got {type(test_run_config).__name__}")
        if custom_image is not None and not isinstance(custom_image, CustomImage):
            raise TypeError("custom_image must be a kilele.stress.CustomImage (kilele.rime.CustomImage), "
                            f"got {type(custom_image).__name__}")
        config = self._upload_config_files(test_run_config)
        body: dict[str, Any] = {"test_run_config": config}
        optional = {"project_id": _project_id(project_id), "rime_managed_image": rime_managed_image,
                    "custom_image": custom_image.to_dict() if custom_image is not None else None,
                    "ram_request_megabytes": ram_request_megabytes,
                    "cpu_request_millicores": cpu_request_millicores}
        body.update({key: value for key, value in optional.items() if value is not None})
        job = self._request("POST", "/stress-tests", json=body)
        return StressTestJob(self, job["job_id"], job)  # type: ignore[arg-type]

    def start_stress_test_job(self, *args: Any, **kwargs: Any) -> StressTestJob:
        """:meth:`start_stress_test` under the name seed 002's example calls."""
        return self.start_stress_test(*args, **kwargs)

    def _upload_config_files(self, test_run_config: Mapping[str, Any]) -> dict[str, Any]:
        """A deep copy of the config with every local path uploaded and replaced by its URI
        (each file once, even when two keys name it)."""
        found = local_paths(test_run_config)  # every missing file before any request
        config = copy.deepcopy(dict(test_run_config))
        uris: dict[str, str] = {}
        for (section, key), path in found.items():
            real = os.path.realpath(path)
            if real not in uris:
                uris[real] = self.upload_stress_test_file(path)
            config[section] = {**config[section], key: uris[real]}
        return config

    def upload_stress_test_file(self, path: str) -> str:
        """Upload a local data or model file for stress tests; returns the ``s3://`` URI to
        put in a test run config (``start_stress_test`` does this for local paths itself)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no file {path!r} to upload")
        answer = self._request("POST", "/stress-tests/uploads", json={"filename": os.path.basename(path)})
        self._post_presigned(answer["upload"], path, f"stress tests ({answer['uri']})",
                             "nothing was started")
        return str(answer["uri"])

    def list_stress_test_jobs(
        self,
        status_filters: Optional[Iterable[Union[str, Enum]]] = None,
        project_id: Union[str, Project, None] = None,
    ) -> list[StressTestJob]:
        """Your stress-test jobs of the last two days (the platform keeps jobs that long),
        newest first, of any of ``status_filters`` (``UNKNOWN_JOB_STATUS``, ``PENDING``,
        ``RUNNING``, ``FAILING``, ``SUCCEEDED``) and of one project if given."""
        if isinstance(status_filters, (str, Enum)):
            status_filters = [status_filters]
        statuses = [_enum_value(s) for s in status_filters] if status_filters else None
        jobs = self._request("GET", "/stress-tests", params={"status": statuses, "project_id": _project_id(project_id)})
        return [StressTestJob(self, job["job_id"], job) for job in jobs]  # type: ignore[arg-type]

    def get_stress_test_job(self, job_id: str) -> StressTestJob:
        """A stress-test job by id (fetched now, so an unknown id is a 404 here)."""
        job = StressTestJob(self, job_id)  # type: ignore[arg-type]
        job.refresh()
        return job
