"""Stress tests (seed 002): the objects ``Client.create_project`` and
``Client.start_stress_test`` answer.

* :class:`Project` — ``project_id``, ``name``, ``description`` (RIME's ``RIMEProject``);
* :class:`CustomImage` — a Docker image to run a stress test on;
* :class:`StressTestJob` — one job on the platform (RIME's ``RIMEStressTestJob``): its status,
  waiting for it, its logs, its results as pandas DataFrames and its HTML report.

pandas is needed only for the result methods: ``pip install 'kilele[rime]'``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

from kilele._args import _segment
from kilele._polling import follow
from kilele.constants import FINAL_STRESS_TEST_STATUSES
from kilele.errors import ConflictError, StressTestFailedError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from kilele.client import Client

#: The keys of :meth:`StressTestJob.get_status`'s answer, in seed 002's order.
STATUS_KEYS = ("name", "type", "status", "start_time_secs", "running_time_secs")
#: The result format this SDK reads (``version=None`` asks for it).
RESULTS_VERSION = "1.0"
#: RIME result versions that name this SDK's format: seed 002's examples pin ``"0.14.0"``, whose
#: columns Kilele's format 1.0 follows, so the SDK asks the API for "1.0" instead.
RIME_RESULT_VERSIONS = {"0.14.0": RESULTS_VERSION}
PANDAS_HINT = "pip install 'kilele[rime]'"


def _pandas() -> Any:
    """pandas, or an ImportError that names the SDK extra which brings it."""
    try:
        import pandas
    except ImportError as e:
        raise ImportError(
            f"stress-test results are pandas DataFrames and pandas is not installed: {PANDAS_HINT} "
            "(the SDK's 'rime' extra)"
        ) from e
    return pandas


@dataclass
class Project:
    """A project: stress-test runs filed together (RIME's ``RIMEProject``).

    ``project_id`` is what ``start_stress_test`` and ``list_stress_test_jobs`` take.
    """

    project_id: str
    name: str
    description: str = ""
    owner_id: Optional[str] = None
    created_at: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Project":
        """A project from the API's JSON."""
        return cls(project_id=str(data["project_id"]), name=str(data.get("name") or ""),
                   description=data.get("description") or "", owner_id=data.get("owner_id"),
                   created_at=data.get("created_at"))

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON shape."""
        return {"project_id": self.project_id, "name": self.name, "description": self.description,
                "owner_id": self.owner_id, "created_at": self.created_at}


@dataclass(frozen=True)
class CustomImage:
    """A Docker image to run a stress test on (seed 002's ``CustomImage``): ``name`` is the
    image reference, ``pull_secret`` the name of the registry secret that pulls it, if any
    (a name, RIME's ``PullSecret(name=…)`` or ``{"name": …}``; sent as RIME's ``{"name": …}``)."""

    name: str
    pull_secret: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"CustomImage.name must be a non-empty image name, got {self.name!r}")
        secret = self.pull_secret
        if secret is not None and not isinstance(secret, str):
            # RIME's CustomImage.PullSecret(name=...), or its JSON
            name = secret.get("name") if isinstance(secret, Mapping) else getattr(secret, "name", None)
            if not isinstance(name, str):
                raise TypeError(f"CustomImage.pull_secret must be a secret name (str), got {type(secret).__name__}")
            object.__setattr__(self, "pull_secret", name)

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON shape: ``{"name", "pull_secret"?: {"name"}}``."""
        if self.pull_secret is None:
            return {"name": self.name}
        return {"name": self.name, "pull_secret": {"name": self.pull_secret}}


class StressTestJob:
    """A stress-test job on the platform (RIME's ``RIMEStressTestJob``).

    Got from ``client.start_stress_test(...)`` or ``client.list_stress_test_jobs(...)``, or
    rebuilt from an id: ``StressTestJob(client, job_id)``. ``info`` is the job as last fetched.
    """

    def __init__(self, client: "Client", job_id: str, info: Optional[Mapping[str, Any]] = None):
        self._client = client
        self.job_id = str(job_id)
        self.info: dict[str, Any] = dict(info or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(job_id={self.job_id!r}, status={self.info.get('status')!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StressTestJob) and other.job_id == self.job_id

    def __hash__(self) -> int:
        return hash(self.job_id)

    @property
    def _path(self) -> str:
        return f"/stress-tests/{_segment(self.job_id)}"

    def refresh(self) -> dict[str, Any]:
        """Fetch the job (every field of the API's answer) and keep it in ``info``."""
        self.info = dict(self._client._request("GET", self._path))
        return self.info

    def get_status(self, verbose: bool = False, wait_until_finish: bool = False,
                   poll_rate_sec: float = 5.0) -> dict[str, Any]:
        """The job's status: ``{"name", "type", "status", "start_time_secs", "running_time_secs"}``.

        :param verbose: print the status, running time and progress to stdout (at every poll when
            waiting) and, once the job is SUCCEEDED or FAILING, the engine's logs
        :param wait_until_finish: block until the job is SUCCEEDED or FAILING
        :param poll_rate_sec: seconds between two polls while waiting
        """
        info = follow(self.refresh, FINAL_STRESS_TEST_STATUSES, wait=wait_until_finish, poll_rate_sec=poll_rate_sec,
                      show=(lambda info: print(self._status_line(info), flush=True)) if verbose else None)
        if verbose and info.get("status") in FINAL_STRESS_TEST_STATUSES:
            if info.get("error"):
                print(f"Error: {info['error']}")
            print(f"---- engine logs of stress test {self.job_id} ----")
            print(self.get_logs().rstrip("\n"))
            print("---- end of logs ----", flush=True)
        return {key: info.get(key) for key in STATUS_KEYS}

    def _status_line(self, info: Mapping[str, Any]) -> str:
        running = info.get("running_time_secs")
        running_text = f"{float(running):.2f} secs" if isinstance(running, (int, float)) else "-"
        line = (f"Job {self.job_id} ({info.get('name')}): status {info.get('status')}, "
                f"running time {running_text}")
        return f"{line}, progress: {info['progress']}" if info.get("progress") else line

    def get_logs(self) -> str:
        """The engine's log so far (text)."""
        return str(self._client._request("GET", f"{self._path}/logs").get("logs") or "")

    def get_test_run_id(self) -> Optional[str]:
        """The id of the job's test run (None until the platform assigned one)."""
        if not self.info.get("test_run_id"):
            self.refresh()
        return self.info.get("test_run_id")

    def get_test_cases_result(self, version: Optional[str] = None) -> "pandas.DataFrame":
        """Every test case of a SUCCEEDED job, one row each (``test_run_id``, ``features``,
        ``test_batch_type``, ``test_category``, ``status``, ``severity``, ``importance_score``,
        then ``metric:…`` and ``threshold:…`` columns). ``version`` pins the result format."""
        return self._frame("test-cases", version)

    def get_test_run_result(self, version: Optional[str] = None) -> "pandas.DataFrame":
        """The summary of a SUCCEEDED job's test run in one row (counts by status and severity,
        the model's performance…). ``version`` pins the result format."""
        return self._frame("test-run", version)

    def _frame(self, which: str, version: Optional[str]) -> "pandas.DataFrame":
        pandas = _pandas()  # before any call: a missing extra is the first thing to fix
        if version is not None:
            version = RIME_RESULT_VERSIONS.get(str(version), str(version))
        answer = self._results_call("GET", f"{self._path}/{which}", params={"version": version})
        columns = list(answer.get("columns") or [])
        records = answer.get("records") or []
        if records and isinstance(records[0], Mapping):
            rows = [[record.get(column) for column in columns] for record in records]
        else:
            rows = [list(record) for record in records]
        return pandas.DataFrame(rows, columns=columns)

    def get_report(self, path: str) -> str:
        """Download the run's self-contained HTML report to ``path`` (into it, as
        ``stress-test-<job_id>.html``, when ``path`` is a directory) and return where it is."""
        target = os.fspath(path)
        if os.path.isdir(target):
            target = os.path.join(target, f"stress-test-{self.job_id}.html")
        answer = self._results_call("GET", f"{self._path}/report")
        self._client._download_file(answer, target, f"the report of stress test {self.job_id}")
        return target

    def _results_call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call that answers 409 unless the job SUCCEEDED: a FAILING job becomes
        :class:`StressTestFailedError` with its reason."""
        try:
            return self._client._request(method, path, **kwargs)
        except ConflictError as conflict:
            info = self.refresh()
            if info.get("status") != "FAILING":
                raise
            error = info.get("error")
            raise StressTestFailedError(
                f"stress test {self.job_id} ({info.get('name')}) is FAILING, so it has no results: "
                f"{error or 'no reason given'} (its logs: job.get_logs())",
                status_code=conflict.status_code, job_id=self.job_id, error=error,
            ) from conflict


__all__ = ["Project", "CustomImage", "StressTestJob", "STATUS_KEYS", "RESULTS_VERSION"]
