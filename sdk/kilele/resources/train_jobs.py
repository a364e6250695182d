"""Train jobs: hyperparameter searches over models, one app version each."""
from __future__ import annotations

import time
from typing import Any, Mapping, Optional, Union

from kilele._args import StrOrEnum, _budget, _enum_value, _segment, _version
from kilele._http import HttpClient
from kilele._progress import _progress_bar, _update_bar, trial_progress
from kilele.constants import FINAL_TRAIN_JOB_STATUSES
from kilele.errors import TrainJobErrored


class TrainJobsMixin(HttpClient):
    """Create, list, follow and stop train jobs; list their trials."""

    def create_train_job(
        self,
        app: str,
        task: StrOrEnum,
        train_dataset_id: str,
        val_dataset_id: str,
        budget: Optional[Mapping[StrOrEnum, Any]],
        models: Union[list[str], str, None] = None,
        train_args: Optional[Mapping[str, Any]] = None,
    ) -> dict[str, Any]:
        """Create and start a train job: a hyperparameter search over ``models`` (ids; default:
        every model available to you for ``task``) trained on one dataset and scored on the other.

        ``budget`` is ``{BudgetOption: amount}`` (or the option names as strings):
        ``TIME_HOURS`` (default 0.1), ``GPU_COUNT`` (default 0) and ``MODEL_TRIAL_COUNT`` (trials
        per model, -1 for unlimited; the default). ``train_args`` reach every model's ``train()``.
        Returns ``{"id", "app", "app_version"}``.
        """
        if isinstance(models, str):
            models = [models]
        body: dict[str, Any] = {
            "app": app,
            "task": _enum_value(task),
            "train_dataset_id": train_dataset_id,
            "val_dataset_id": val_dataset_id,
            "budget": _budget(budget),
            "models": list(models) if models is not None else None,
            "train_args": dict(train_args or {}),
        }
        return self._request("POST", "/train-jobs", json=body)

    def stop_all_jobs(self) -> dict[str, Any]:
        """Stop every running train and inference job on the platform (superadmin only).
        Returns ``{"train_jobs_stopped": n, "inference_jobs_stopped": m}``."""
        return self._request("POST", "/jobs/stop-all")

    def get_train_jobs_by_user(self, user_id: Optional[str] = None) -> list[dict[str, Any]]:
        """Train jobs of a user (None: yours; other users' need an admin)."""
        return self._request("GET", "/train-jobs", params={"user_id": user_id})

    def get_train_jobs_of_app(self, app: str) -> list[dict[str, Any]]:
        """Your train jobs of an app, one per app version."""
        return self._request("GET", f"/train-jobs/{_segment(app)}")

    def get_train_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """Your train job of ``app`` at ``app_version`` (-1: the latest), with its ``workers``."""
        return self._request("GET", f"/train-jobs/{_segment(app)}/{_version(app_version)}")

    def stop_train_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """Stop the train job now (running trials end as TERMINATED). Returns the STOPPED job."""
        return self._request("POST", f"/train-jobs/{_segment(app)}/{_version(app_version)}/stop")

    def get_trials_of_train_job(self, app: str, app_version: int = -1) -> list[dict[str, Any]]:
        """Every trial of the train job, oldest first."""
        return self._request("GET", f"/train-jobs/{_segment(app)}/{_version(app_version)}/trials")

    def get_best_trials_of_train_job(self, app: str, app_version: int = -1, max_count: int = 2) -> list[dict[str, Any]]:
        """The best COMPLETED trials of the train job, best score first (at most ``max_count``)."""
        return self._request("GET", f"/train-jobs/{_segment(app)}/{_version(app_version)}/best-trials",
                             params={"max_count": int(max_count)})

    def wait_for_train_job(
        self,
        app: str,
        app_version: int = -1,
        timeout: Optional[float] = None,
        poll_rate_sec: float = 2,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Poll the train job until it is STOPPED and return it (with its workers); raise
        :class:`~kilele.errors.TrainJobErrored` (with the job and its ``error``) if it ends ERRORED.

        :param timeout: seconds to wait at most (None: no limit); then :class:`TimeoutError`
        :param poll_rate_sec: seconds between two polls
        :param progress: show a progress bar (tqdm, on stderr) of finished trials (COMPLETED
            and ERRORED) against the trial budget (MODEL_TRIAL_COUNT × models; an open counter
            when unlimited), with the best score so far
        """
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        bar = None
        try:
            while True:
                job = self.get_train_job(app, app_version)
                # Stay on the version found first, even if a newer one starts meanwhile.
                app_version = int(job.get("app_version") or app_version)
                finished = job.get("status") in FINAL_TRAIN_JOB_STATUSES
                if progress:
                    summary = trial_progress(job, self.get_trials_of_train_job(app, app_version))
                    if bar is None:
                        bar = _progress_bar(f"{app} v{app_version}", summary["total"])
                    _update_bar(bar, job, summary)
                if finished:
                    if job.get("status") == "ERRORED":
                        raise TrainJobErrored(
                            f"train job {app} v{app_version} ended ERRORED: {job.get('error') or 'no reason given'}",
                            job=job, error=job.get("error"))
                    return job
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            f"train job {app} v{app_version} is still {job.get('status')} after {timeout} s"
                        )
                    time.sleep(min(float(poll_rate_sec), left))
                else:
                    time.sleep(float(poll_rate_sec))
        finally:
            if bar is not None:
                bar.close()
