"""Train jobs as users see them: create, list, inspect, stop; trials, logs and parameters."""
from __future__ import annotations

import re
from typing import Any, Optional

from chalicelib.entities import (
    BudgetOption,
    Dataset,
    DatasetStatus,
    Task,
    TrainJob,
    TrainJobStatus,
    Trial,
    TrialStatus,
    User,
    Worker,
    WorkerStatus,
)
from chalicelib.direct_transfers import DirectTransfers
from chalicelib.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from chalicelib.permissions import Action, can_view_model, owns_or_admin, require
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.services.gpus import GpuSupport
from chalicelib.services.model_images import ModelImages
from chalicelib.services.trial_loop import execution_name, slot_state
from chalicelib.services.trial_messages import TRAIN_ARGS_MAX_BYTES, WORKFLOW_STATE_LIMIT_BYTES, workflow_size
from chalicelib.ports import BlobStore, CounterStore, DatasetStore, ModelStore, TrainJobStore, TrialStore, WorkflowRunner

LATEST = -1


class TrainJobService:
    def __init__(
        self,
        jobs: TrainJobStore,
        trials: TrialStore,
        counters: CounterStore,
        models: ModelStore,
        datasets: DatasetStore,
        blobs: BlobStore,
        workflows: WorkflowRunner,
        slots_per_model: int,
        presigned_url_seconds: int,
        clock: Clock = utc_now,
        gpus: GpuSupport = GpuSupport(),
        images: Optional[ModelImages] = None,
        direct: Optional[DirectTransfers] = None,
    ):
        """``gpus``: whether trials can get GPUs (a budget asking for some where they cannot is refused);
        ``images``: the managed images models run in (a job shows theirs and their build status);
        ``direct``: where IAM users get their copy of a trial's parameters, to read straight from S3."""
        self._gpus = gpus
        self._direct = direct
        self._images = images
        self._jobs = jobs
        self._trials = trials
        self._counters = counters
        self._models = models
        self._datasets = datasets
        self._blobs = blobs
        self._workflows = workflows
        self._slots_per_model = slots_per_model
        self._presign_seconds = presigned_url_seconds
        self._clock = clock

    def create_train_job(
        self,
        actor: User,
        app: str,
        task: Task,
        train_dataset_id: str,
        val_dataset_id: str,
        budget: dict[str, float],
        model_ids: Optional[list[str]] = None,
        train_args: Optional[dict[str, Any]] = None,
    ) -> dict[str, Any]:
        """Start a hyperparameter search: one worker execution per model slot. ``train_args``
        larger than a trial's message can carry are refused (PayloadTooLarge) before anything, as
        is a GPU_COUNT > 0 where trials get no GPU (Unprocessable, see services/gpus.py)."""
        require(actor, Action.MANAGE_TRAIN_JOBS)
        _check_train_args(train_args or {})
        self._gpus.check_training(float(budget.get(BudgetOption.GPU_COUNT.value, 0) or 0))
        train = self._usable_dataset(actor, train_dataset_id, task)
        self._usable_dataset(actor, val_dataset_id, task)
        _check_classes(train, task)
        models = self._usable_models(actor, task, model_ids)
        version = self._counters.increment(f"app-version#{actor.id}#{app}")
        job = TrainJob(
            id=new_id(),
            user_id=actor.id,
            app=app,
            app_version=int(version or 1),
            task=task,
            train_dataset_id=train_dataset_id,
            val_dataset_id=val_dataset_id,
            budget=budget,
            model_ids=[m.id for m in models],
            created_at=self._clock(),
            train_args=train_args or {},
        )
        gpus = int(job.budget_value(BudgetOption.GPU_COUNT))
        slots = max(1, gpus // len(models)) if gpus else self._slots_per_model
        for model in models:
            for slot in range(slots):
                worker = Worker(model.id, model.name, slot, started_at=job.created_at)
                job.workers[worker.key] = worker
        self._jobs.add(job)
        try:
            for worker in job.workers.values():
                state = slot_state(job.id, worker.key, worker.model_id, worker.slot)
                arn = self._workflows.start(execution_name(job.id, worker.key, 0), state)
                self._jobs.update_worker(job.id, worker.key, execution_arn=arn)
        except Exception as e:
            self._jobs.set_status(job.id, TrainJobStatus.ERRORED, only_from=(TrainJobStatus.STARTED,),
                                  at=self._clock(), error=f"could not start the workers: {e}")
            raise
        return {"id": job.id, "app": job.app, "app_version": job.app_version}

    def _usable_dataset(self, actor: User, dataset_id: str, task: Task) -> Dataset:
        dataset = self._datasets.get(dataset_id)
        if not dataset or not owns_or_admin(actor, dataset.owner_id):
            raise NotFound(f"no dataset {dataset_id!r}")
        if dataset.status is not DatasetStatus.READY:  # PENDING may become READY: a conflict, not bad input
            raise Conflict(f"dataset {dataset_id!r} is not READY (it is {dataset.status.value}"
                           + (f": {dataset.error}" if dataset.error else "") + ")")
        if dataset.task is not task:
            raise Unprocessable(f"dataset {dataset.name!r} is for {dataset.task.value}, not {task.value}")
        return dataset

    def _usable_models(self, actor: User, task: Task, model_ids: Optional[list[str]]) -> list[Any]:
        if model_ids is None:
            available = self._models.list_own_and_public(actor.id)
            models = sorted((m for m in available if m.task is task), key=lambda m: m.created_at)
            if not models:
                raise Unprocessable(f"no model available to you for {task.value}; upload one first")
            return models
        models = []
        for model_id in dict.fromkeys(model_ids):
            model = self._models.get(model_id)
            if model is None or not can_view_model(actor, model):
                raise NotFound(f"no model {model_id!r}")
            if model.task is not task:
                raise Unprocessable(f"model {model.name!r} is for {model.task.value}, not {task.value}")
            models.append(model)
        return models

    # -- reading -------------------------------------------------------------------------------

    def get_train_jobs_by_user(self, actor: User, user_id: str) -> list[dict[str, Any]]:
        require(actor, Action.MANAGE_TRAIN_JOBS)
        if not owns_or_admin(actor, user_id):
            raise Forbidden("only admins can list other users' train jobs")
        return [j.to_dict() for j in self._jobs.list_by_user(user_id)]

    def get_train_jobs_of_app(self, actor: User, app: str) -> list[dict[str, Any]]:
        require(actor, Action.MANAGE_TRAIN_JOBS)
        return [j.to_dict() for j in self._jobs.list_of_app(actor.id, app)]

    def get_train_job(self, actor: User, app: str, app_version: int = LATEST) -> dict[str, Any]:
        """The job with its workers; ``images``: {model id: the managed image it runs in, with its
        build status} for its models that have one (their trials wait while it builds)."""
        job = self._job(actor, app, app_version)
        data = job.to_dict(with_workers=True)
        if self._images is not None:
            models = [m for m in (self._models.get(i) for i in job.model_ids) if m is not None and m.image]
            data["images"] = {m.id: self._images.describe(m) for m in models}
        return data

    def stop_train_job(self, actor: User, app: str, app_version: int = LATEST) -> dict[str, Any]:
        """Stop the job now: running trials end (TERMINATED), the job is STOPPED."""
        job = self._job(actor, app, app_version)
        if not self._jobs.set_status(
            job.id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED, TrainJobStatus.RUNNING),
            at=self._clock(),
        ):
            raise Conflict(f"train job {app} v{job.app_version} is already {job.status.value}")
        self._end(job)
        return self._jobs.get(job.id).to_dict(with_workers=True)  # type: ignore[union-attr]

    def stop_all_train_jobs(self) -> int:
        """Stop every running train job (for the superadmin's stop_all_jobs); returns how many."""
        stopped = 0
        for job in self._jobs.list_all():
            if self._jobs.set_status(job.id, TrainJobStatus.STOPPED,
                                     only_from=(TrainJobStatus.STARTED, TrainJobStatus.RUNNING), at=self._clock()):
                self._end(job)
                stopped += 1
        return stopped

    def _end(self, job: TrainJob) -> None:
        now = self._clock()
        for trial in self._trials.list_of_job(job.id):
            if trial.status in (TrialStatus.PENDING, TrialStatus.RUNNING):
                self._trials.finish(trial.id, TrialStatus.TERMINATED, now, error_message="stopped with the train job")
        for worker in job.workers.values():
            if worker.status is WorkerStatus.RUNNING:
                self._jobs.update_worker(job.id, worker.key, status=WorkerStatus.STOPPED, stopped_at=now)
            # The worker process also sees the STOPPED job at its next heartbeat and ends its trial.
            self._workflows.stop(worker.execution_arn, cause="stop_train_job")

    def end_unfinished_trials(self, reason: str) -> int:
        """End every PENDING or RUNNING trial of a running job ERRORED with ``reason`` (the local
        stack calls it as it stops, before its worker processes are ended; returns how many)."""
        ended = 0
        for job in self._jobs.list_all():
            if job.status.is_final:
                continue
            for trial in self._trials.list_of_job(job.id):
                if trial.status in (TrialStatus.PENDING, TrialStatus.RUNNING):
                    ended += bool(self._trials.finish(trial.id, TrialStatus.ERRORED, self._clock(),
                                                      error_message=reason))
        return ended

    def resume_interrupted(self, reason: str) -> int:
        """Continue every train job whose workflows did not survive a stop of the platform (the
        local stack calls it at start-up): each running worker's unfinished trials end ERRORED
        with ``reason``, and the worker goes on in a new execution (the budget still counts from
        the job's creation). Returns how many workers were resumed."""
        resumed = 0
        self.end_unfinished_trials(reason)
        for job in self._jobs.list_all():
            if job.status.is_final:
                continue
            now = self._clock()
            running = [w for w in job.workers.values() if w.status is WorkerStatus.RUNNING]
            for worker in running:
                generation = _generation(worker.execution_arn) + 1
                state = slot_state(job.id, worker.key, worker.model_id, worker.slot, generation)
                try:
                    arn = self._workflows.start(execution_name(job.id, worker.key, generation), state)
                except Exception as e:  # noqa: BLE001 - the worker ends with why; the others go on
                    self._jobs.update_worker(job.id, worker.key, status=WorkerStatus.ERRORED, stopped_at=now,
                                             error=f"{reason}; it could not be resumed: {e}"[:2000])
                    continue
                self._jobs.update_worker(job.id, worker.key, execution_arn=arn)
                resumed += 1
            if not running or not _has_running_worker(self._jobs.get(job.id)):
                self._jobs.set_status(job.id, TrainJobStatus.ERRORED,
                                      only_from=(TrainJobStatus.STARTED, TrainJobStatus.RUNNING), at=now,
                                      error=f"{reason}; no worker could be resumed")
        return resumed

    def get_trial(self, actor: User, trial_id: str) -> dict[str, Any]:
        """A trial, with its model's class name (``model_class``; None if the model was deleted):
        the class ``load_trial_model`` needs."""
        trial = self._trial(actor, trial_id)
        model = self._models.get(trial.model_id)
        return {**trial.to_dict(), "model_class": model.model_class if model else None}

    def get_trials_of_train_job(self, actor: User, app: str, app_version: int = LATEST) -> list[dict[str, Any]]:
        job = self._job(actor, app, app_version)
        return [t.to_dict() for t in self._trials.list_of_job(job.id)]

    def get_best_trials_of_train_job(
        self, actor: User, app: str, app_version: int = LATEST, max_count: int = 2
    ) -> list[dict[str, Any]]:
        """Fully trained trials (``Trial.fully_trained``), best score first. Screening trials
        (PolicyKnob EARLY_STOP / QUICK_EVAL) are never ranked: their scores are not a fully
        trained model's; ``get_trials_of_train_job`` lists them, marked."""
        job = self._job(actor, app, app_version)
        done = [t for t in self._trials.list_of_job(job.id) if t.fully_trained]
        done.sort(key=lambda t: (-(t.score or 0.0), t.number))
        return [t.to_dict() for t in done[:max_count]]

    def get_trial_logs(self, actor: User, trial_id: str) -> dict[str, Any]:
        trial = self._trial(actor, trial_id)
        try:
            logs = self._blobs.get_bytes(trial.logs_key).decode("utf-8", "replace") if trial.logs_key else ""
        except NotFound:
            logs = ""
        return {"trial_id": trial.id, "status": trial.status.value, "logs": logs}

    def get_trial_parameters(self, actor: User, trial_id: str, iam_principal: Optional[str] = None) -> dict[str, Any]:
        """A short-lived download URL of the trial's parameters (numpy .npz, no pickle); for a
        request signed by an IAM user also ``direct``, a copy under its own prefix it may read
        with its credentials (chalicelib/direct_transfers.py)."""
        trial = self._trial(actor, trial_id)
        if trial.status is not TrialStatus.COMPLETED or not trial.params_key:
            raise Conflict(f"trial {trial_id!r} is {trial.status.value}: it has no parameters")
        return {
            "trial_id": trial.id,
            "format": "npz",
            "url": self._blobs.presigned_get(trial.params_key, self._presign_seconds),
            "direct": self._direct.copy_for(self._blobs, iam_principal, trial.params_key,
                                            f"trials/{trial.id}/params.npz") if self._direct else None,
        }

    def resolve(self, actor: User, app: str, app_version: int = LATEST) -> TrainJob:
        """The caller's train job of ``app`` at ``app_version`` (-1: the latest)."""
        return self._job(actor, app, app_version)

    def trial(self, actor: User, trial_id: str) -> Trial:
        """A trial of one of the caller's train jobs (any job for admins)."""
        return self._trial(actor, trial_id)

    def _job(self, actor: User, app: str, app_version: int) -> TrainJob:
        require(actor, Action.MANAGE_TRAIN_JOBS)
        jobs = self._jobs.list_of_app(actor.id, app)
        if not jobs:
            raise NotFound(f"you have no train job for app {app!r}")
        if app_version == LATEST:
            return max(jobs, key=lambda j: j.app_version)
        for job in jobs:
            if job.app_version == app_version:
                return job
        raise NotFound(f"app {app!r} has no version {app_version}")

    def _trial(self, actor: User, trial_id: str) -> Trial:
        require(actor, Action.MANAGE_TRAIN_JOBS)
        trial = self._trials.get(trial_id)
        job = self._jobs.get(trial.train_job_id) if trial else None
        if not trial or not job or not owns_or_admin(actor, job.user_id):
            raise NotFound(f"no trial {trial_id!r}")
        return trial


def _generation(execution_arn: Optional[str]) -> int:
    """The generation in a worker execution's name (``...-g<n>``, see ``execution_name``)."""
    match = re.search(r"-g(\d+)$", execution_arn or "")
    return int(match.group(1)) if match else 0


def _has_running_worker(job: Optional[TrainJob]) -> bool:
    """Whether ``job`` still has a running worker."""
    return job is not None and any(w.status is WorkerStatus.RUNNING for w in job.workers.values())


def _check_train_args(train_args: dict[str, Any]) -> None:
    """Every trial's message carries ``train_args``: past the limit, no trial could be dispatched."""
    size = workflow_size(train_args)
    if size > TRAIN_ARGS_MAX_BYTES:
        raise PayloadTooLarge(
            f"train_args is {size} bytes as JSON (non-ASCII characters escaped); the limit is {TRAIN_ARGS_MAX_BYTES} "
            f"bytes, so that each trial's message fits Step Functions' {WORKFLOW_STATE_LIMIT_BYTES // 1024} KiB "
            f"state limit")


CLASSIFICATION = (Task.TABULAR_CLASSIFICATION, Task.IMAGE_CLASSIFICATION)


def _check_classes(train: Dataset, task: Task) -> None:
    """A classifier learns nothing from one class: its every trial would score a perfect
    accuracy on a one-class validation set, or fit and fail. Refused before anything runs."""
    classes = train.stats.get("classes")
    if task in CLASSIFICATION and isinstance(classes, int) and classes < 2:
        raise Unprocessable(f"the train dataset {train.name!r} has {classes} class{'es' if classes != 1 else ''} in its "
                            f"target; {task.value} needs at least 2 (add rows of the other classes)")
