"""Stress-test jobs (seed 002): start one on a test run config, follow it, read its results.

The API checks the config's shape (:mod:`chalicelib.stress_config`) and resolves its inputs to
objects of the data bucket; the engine runs in the worker image, started by the stress-test
state machine (workflows/stress_test.asl.json), whose Lambda steps are :meth:`start`,
:meth:`record` and :meth:`record_failure`. Results: ``stress/<job id>/`` (Parquet for users who
download them, JSON that this service serves, and the HTML report).
"""
from __future__ import annotations

import json
import posixpath
import re
from datetime import timedelta
from typing import Any, Optional

from chalicelib.entities import (DatasetStatus, InferenceJobStatus, StressTestJob, StressTestStatus, Task, TrainJob,
                                 Trial, TrialStatus, User)
from chalicelib.direct_transfers import DirectTransfers
from chalicelib.errors import Conflict, InvalidInput, NotFound, Unprocessable
from chalicelib.permissions import Action, owns_or_admin, require
from chalicelib.ports import (ApplicationStore, BlobStore, DatasetStore, InferenceJobStore, ModelStore,
                              StressTestJobStore, TrainJobStore, TrialStore, WorkflowRunner)
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.services import stress_messages, trial_messages
from chalicelib.services.model_images import StressImages
from chalicelib.services.projects import ProjectService
from chalicelib.stress_config import DATASET_URI, ModelInfoShape, parse_test_run_config

#: Jobs are listed this long (the table's TTL; filtered on read).
JOB_RETENTION = timedelta(days=2)
RESULT_VERSION = "1.0"
UPLOAD_PREFIX = "stress-inputs"
_FILENAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
_DATASET_URI = re.compile(DATASET_URI)
#: The model tasks a stress test of a trial may run as, per training task (tabular only).
TRIAL_MODEL_TASKS = {
    Task.TABULAR_CLASSIFICATION: ("Binary Classification", "Multi-class Classification"),
    Task.TABULAR_REGRESSION: ("Regression",),
}
_LIVE_INFERENCE = (InferenceJobStatus.STARTED, InferenceJobStatus.RUNNING)


def best_trial(trials: list[Trial]) -> Optional[Trial]:
    """The best COMPLETED trial (with parameters): full trials before screening ones, then the
    highest score (the first of ``GET /train-jobs/{app}/{version}/best-trials``)."""
    done = [t for t in trials if t.status is TrialStatus.COMPLETED and t.params_key]
    return min(done, key=lambda t: (t.screening, -(t.score or 0.0), t.number), default=None)


class StressTestService:
    def __init__(
        self,
        jobs: StressTestJobStore,
        projects: ProjectService,
        datasets: DatasetStore,
        blobs: BlobStore,
        workflows: WorkflowRunner,
        message_config: stress_messages.StressMessageConfig,
        heartbeat_timeout_seconds: int,
        presigned_url_seconds: int,
        max_upload_bytes: int,
        clock: Clock = utc_now,
        *,
        train_jobs: Optional[TrainJobStore] = None,
        trials: Optional[TrialStore] = None,
        models: Optional[ModelStore] = None,
        apps: Optional[ApplicationStore] = None,
        inference_jobs: Optional[InferenceJobStore] = None,
        queue_timeout_seconds: int = 3600,
        images: Optional[StressImages] = None,
        direct: Optional[DirectTransfers] = None,
    ):
        """``train_jobs``, ``trials``, ``models``, ``apps`` and ``inference_jobs`` resolve
        ``model_info.trial_id`` / ``model_info.app`` (without them such configs are a 422);
        ``direct``: where IAM users get their copy of a report, to read straight from S3."""
        self._jobs = jobs
        self._direct = direct
        self._images = images  # where the engine runs: a managed image (None: none can be named)
        self._projects = projects
        self._datasets = datasets
        self._blobs = blobs
        self._workflows = workflows
        self._config = message_config
        self._heartbeat_timeout = heartbeat_timeout_seconds
        self._queue_timeout = queue_timeout_seconds
        self._presign_seconds = presigned_url_seconds
        self._max_upload = max_upload_bytes
        self._clock = clock
        self._train_jobs = train_jobs
        self._trials = trials
        self._models = models
        self._apps = apps
        self._inference_jobs = inference_jobs

    # -- the model under test: a Kilele trial ----------------------------------------------------

    def resolve_trial_model(self, actor: User, info: ModelInfoShape,
                            model_task: Optional[str] = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """What the worker needs of ``model_info.trial_id`` / ``model_info.app``: the trial's model
        file, class, knobs, parameters, dependencies and task (:func:`stress_messages.stress_test_message`'s
        ``trial_model``), and the ``model_info`` the job records. 404 for what the caller cannot
        see, 409 for a trial that is not COMPLETED (or an app version with none), 422 for a model
        whose task a stress test does not cover (docs/stress-tests-api.md)."""
        if None in (self._train_jobs, self._trials, self._models):
            raise Unprocessable("model_info: this deployment cannot stress-test Kilele trials; "
                                "give model_info.path (a RIME-convention model file)")
        if info.trial_id is not None:
            where = "model_info.trial_id"
            trial = self._trials.get(info.trial_id)
            job = self._train_jobs.get(trial.train_job_id) if trial else None
            if trial is None or job is None or not owns_or_admin(actor, job.user_id):
                raise NotFound(f"{where}: no trial {info.trial_id!r}")
            if trial.status is not TrialStatus.COMPLETED or not trial.params_key:
                raise Conflict(f"{where}: trial {trial.id!r} is {trial.status.value}: only a COMPLETED trial "
                               "has a trained model to stress-test")
            recorded = {"trial_id": trial.id}
        else:
            where = "model_info.app"
            job = self._app_train_job(actor, info.app or "", info.app_version)
            trial = best_trial(self._trials.list_of_job(job.id))
            if trial is None:
                raise Conflict(f"{where}: {job.app} v{job.app_version} has no COMPLETED trial to stress-test "
                               f"(its train job is {job.status.value})")
            recorded = {"app": job.app, "app_version": job.app_version, "trial_id": trial.id}
        allowed = TRIAL_MODEL_TASKS.get(job.task)
        if allowed is None:
            raise Unprocessable(f"{where}: trial {trial.id!r} is a {job.task.value} model; stress tests cover "
                                "tabular classification and regression (TABULAR_CLASSIFICATION, TABULAR_REGRESSION)")
        if model_task is not None and model_task not in allowed:
            raise Unprocessable(f"model_task: {model_task!r} does not suit trial {trial.id!r}, a {job.task.value} "
                                f"model (use {' or '.join(repr(t) for t in allowed)}, or leave it out)")
        model = self._models.get(trial.model_id)
        if model is None:
            raise NotFound(f"{where}: the model of trial {trial.id!r} was deleted")
        trial_model = {
            "trial_id": trial.id, "train_job_id": job.id, "model_id": model.id, "model_name": trial.model_name,
            "model_class": model.model_class, "model_key": model.object_key, "params_key": trial.params_key,
            "knobs": dict(trial.knobs), "dependencies": dict(model.dependencies), "task": job.task.value,
        }
        return trial_model, recorded

    def _app_train_job(self, actor: User, app: str, app_version: Optional[int]) -> TrainJob:
        """The caller's train job of ``app`` at ``app_version``; -1 (or none): the app's serving
        version (the registered app's pinned version, else the newest version with a live
        inference job, else the newest version)."""
        jobs = self._train_jobs.list_of_app(actor.id, app)
        if not jobs:
            raise NotFound(f"model_info.app: you have no train job for app {app!r}")
        version = app_version if app_version not in (None, -1) else self._serving_version(actor.id, app, jobs)
        for job in jobs:
            if job.app_version == version:
                return job
        raise NotFound(f"model_info.app_version: app {app!r} has no version {version}")

    def _serving_version(self, user_id: str, app: str, jobs: list[TrainJob]) -> int:
        registered = self._apps.get(user_id, app) if self._apps is not None else None
        if registered is not None and registered.version:
            return registered.version
        if self._inference_jobs is not None:
            live = [j for j in self._inference_jobs.list_live_of_app(user_id, app) if j.status in _LIVE_INFERENCE]
            if live:
                return max(live, key=lambda j: (j.app_version, j.created_at)).app_version
        return max(j.app_version for j in jobs)

    # -- inputs ---------------------------------------------------------------------------------

    def start_upload(self, actor: User, filename: str) -> dict[str, Any]:
        """A presigned POST for one input file of the caller, and the ``s3://`` URI a config uses."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        name = posixpath.basename(filename or "")
        if not _FILENAME.match(name):
            raise InvalidInput("filename: use letters, digits, '_', '.' and '-' only (at most 200)")
        key = f"{UPLOAD_PREFIX}/{actor.id}/{new_id()}/{name}"
        return {"uri": f"s3://{self._config.bucket}/{key}",
                "upload": self._blobs.presigned_post(key, self._max_upload, self._presign_seconds)}

    def _input_key(self, actor: User, where: str, uri: str, allow_datasets: bool = True) -> str:
        """The data bucket's key of an input the caller may read; 400 naming ``where`` for a
        value of another form (the document's pattern), 404 for an upload that is not the
        caller's or not there (as for any resource)."""
        if uri.startswith("s3://"):
            bucket, _, key = uri[len("s3://"):].partition("/")
            own = f"{UPLOAD_PREFIX}/{actor.id}/"
            if bucket != self._config.bucket or not key.startswith(own) or ".." in key.split("/"):
                raise NotFound(f"{where}: {uri!r} is not one of your uploads "
                               f"(POST /stress-tests/uploads gives s3://{self._config.bucket}/{own}...)")
            try:
                self._blobs.size(key)
            except NotFound:
                raise NotFound(f"{where}: nothing was uploaded at {uri!r}") from None
            return key
        match = _DATASET_URI.match(uri)
        if match and allow_datasets:
            dataset = self._datasets.get(match.group(1))
            if dataset is None or not owns_or_admin(actor, dataset.owner_id):
                raise NotFound(f"{where}: no dataset {match.group(1)!r}")
            if dataset.status is not DatasetStatus.READY:
                raise Unprocessable(f"{where}: dataset {dataset.id!r} is {dataset.status.value}, not READY")
            return dataset.object_key
        kinds = "an s3:// URI of your uploads" + (" or kilele://datasets/<id>" if allow_datasets else "")
        raise InvalidInput(f"{where}: {uri!r} is not {kinds} (the SDK uploads local files for you)")

    # -- starting ---------------------------------------------------------------------------------

    def start_stress_test(
        self,
        actor: User,
        test_run_config: Any,
        project_id: Optional[str] = None,
        rime_managed_image: Optional[str] = None,
        custom_image: Optional[dict[str, Any]] = None,
        ram_request_megabytes: Optional[int] = None,
        cpu_request_millicores: Optional[int] = None,
        continuous: Optional[dict[str, Any]] = None,
    ) -> dict[str, Any]:
        """Start a stress-test job. ``continuous``: the job is a continuous test of a CT
        instance (``ContinuousTestService`` passes ``{"mode", "ct_instance_id", "history_key"}``,
        which the worker's message carries)."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        shape = parse_test_run_config(test_run_config)
        if rime_managed_image is not None and self._images is None:
            raise NotFound(f"no managed image {rime_managed_image!r}")
        model_info = shape.model_info
        trial_model = recorded_model = None
        if model_info.trial_id is not None or model_info.app is not None:
            trial_model, recorded_model = self.resolve_trial_model(actor, model_info, shape.model_task)
        ref_key = self._input_key(actor, "data_info.ref_path", shape.data_info.ref_path)
        eval_key = self._input_key(actor, "data_info.eval_path", shape.data_info.eval_path)
        model_key = None
        if model_info.path is not None:
            model_key = self._input_key(actor, "model_info.path", model_info.path, allow_datasets=False)
        project = (self._projects.visible(actor, project_id) if project_id
                   else self._projects.default_project(actor))

        now = self._clock()
        job_id = new_id()
        config = shape.model_dump(exclude_none=True)
        config["data_info"].update(ref_path=ref_key, eval_path=eval_key)
        if recorded_model is not None:
            config["model_info"] = recorded_model
            if trial_model["task"] == Task.TABULAR_REGRESSION.value:
                config.setdefault("model_task", "Regression")  # not inferred from the label
        else:
            config["model_info"] = {"path": model_key} if model_key else {}
        job = StressTestJob(
            id=job_id, owner_id=actor.id, project_id=project.id, name=shape.run_name, config=config,
            created_at=now, expires_at=(now + JOB_RETENTION).replace(microsecond=0), test_run_id=new_id(),
            ram_request_megabytes=ram_request_megabytes or 4000,
            cpu_request_millicores=cpu_request_millicores or 1500,
            rime_managed_image=rime_managed_image, custom_image=custom_image,
            **{k: v for k, v in stress_messages.job_keys(job_id).items() if k in ("logs_key", "results_prefix")},
        )
        message = stress_messages.stress_test_message(job, ref_key, eval_key, model_key, self._config,
                                                      trial_model=trial_model)
        # The engine runs in the named managed image, else in the image of the model under test.
        image = self._images.resolve(job_id, rime_managed_image, trial_model and self._models.get(
            trial_model["model_id"]), custom_image) if self._images else None
        if image:
            message["image"] = image
        if continuous is not None:
            message["continuous"] = continuous
        self._jobs.add(job)
        state = {
            "job_id": job.id,
            "message": message,
            # The worker enforces its timeout itself; the state's own timeout is a backstop.
            "timeout_seconds": self._config.timeout_seconds + 300,
            "heartbeat_timeout_seconds": self._heartbeat_timeout,
            # The job's wait for capacity has its own bound; the heartbeat counts from its start.
            "queue_timeout_seconds": self._queue_timeout,
        }
        try:
            arn = self._workflows.start(job.id, state)
        except Exception as e:
            self._jobs.set_status(job.id, StressTestStatus.FAILING, only_from=(StressTestStatus.PENDING,),
                                  finished_at=self._clock(), error=f"could not start the stress test: {e}")
            self._release_image(state)
            raise
        self._jobs.update(job.id, execution_arn=arn)
        return self._job(actor, job.id).to_dict(self._clock())

    # -- the workflow's steps ----------------------------------------------------------------------

    def start(self, state: dict[str, Any]) -> dict[str, Any]:
        """Mark the job RUNNING (the message is on its way to the worker)."""
        self._jobs.set_status(state["job_id"], StressTestStatus.RUNNING, only_from=(StressTestStatus.PENDING,),
                              started_at=self._clock(), progress="running the engine")
        return state

    def record(self, state: dict[str, Any]) -> dict[str, Any]:
        """The worker succeeded: its summary is in ``state["result"]``."""
        summary = stress_messages.summary_of(state.get("result"))
        self._release_image(state)
        self._jobs.set_status(
            state["job_id"], StressTestStatus.SUCCEEDED,
            only_from=(StressTestStatus.PENDING, StressTestStatus.RUNNING),
            finished_at=self._clock(), summary=summary, progress="done",
        )
        return {"job_id": state["job_id"], "status": StressTestStatus.SUCCEEDED.value}

    def record_failure(self, state: dict[str, Any]) -> dict[str, Any]:
        """The run failed (the engine, the model, a timeout, a lost heartbeat): FAILING with why,
        from the worker's ``error.json`` (moto passes SendTaskFailure's cause as null)."""
        failure = state.get("failure") or {}
        message = state.get("message") or {}
        self._release_image(state)
        report = {"error_type": None, "message": None}
        if message.get("error_key"):
            try:
                report = trial_messages.read_error_report(self._blobs.get_bytes(message["error_key"]))
            except NotFound:
                pass
        name = failure.get("Error") or "StressTestError"
        never_started = trial_messages.queue_timeout(state, failure)
        if never_started:
            error = never_started
        elif report["message"]:
            error = report["message"]
        elif name == "States.Timeout":
            error = "the worker went silent (no heartbeat) or ran past its time limit"
        else:
            error = f"{name}: {failure.get('Cause') or 'the worker reported no reason'}"
        self._jobs.set_status(
            state["job_id"], StressTestStatus.FAILING,
            only_from=(StressTestStatus.PENDING, StressTestStatus.RUNNING),
            finished_at=self._clock(), error=error[:4000], progress=None,
        )
        return {"job_id": state["job_id"], "status": StressTestStatus.FAILING.value, "error": error[:1000]}

    def _release_image(self, state: dict[str, Any]) -> None:
        """The job no longer holds the managed image its message named."""
        if self._images is not None:
            self._images.release((state.get("message") or {}).get("image"), state["job_id"])

    def end_interrupted(self, reason: str) -> int:
        """End every stress test left PENDING or RUNNING by a stop of the platform (the local
        stack calls it at start-up: their workflows did not survive): FAILING with ``reason``."""
        ended = 0
        for job in self._jobs.list_all(self._clock()):
            if not job.status.is_final and self._jobs.set_status(
                job.id, StressTestStatus.FAILING, only_from=(StressTestStatus.PENDING, StressTestStatus.RUNNING),
                finished_at=self._clock(), error=reason, progress=None,
            ):
                ended += 1
                if self._images is not None and job.rime_managed_image:  # it no longer holds its image
                    self._images.release({"name": job.rime_managed_image}, job.id)
        return ended

    # -- reading ---------------------------------------------------------------------------------

    def list_stress_tests(self, actor: User, statuses: Optional[list[StressTestStatus]] = None,
                          project_id: Optional[str] = None) -> list[dict[str, Any]]:
        """The caller's jobs of the last two days, newest first."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        now = self._clock()
        if project_id is not None:
            self._projects.visible(actor, project_id)
        jobs = self._jobs.list_by_owner(actor.id, now)
        return [j.to_dict(now) for j in jobs
                if (not statuses or j.status in statuses) and (project_id is None or j.project_id == project_id)]

    def get_stress_test(self, actor: User, job_id: str) -> dict[str, Any]:
        return self._job(actor, job_id).to_dict(self._clock())

    def get_logs(self, actor: User, job_id: str) -> dict[str, Any]:
        job = self._job(actor, job_id)
        try:
            logs = self._blobs.get_bytes(job.logs_key).decode("utf-8", "replace") if job.logs_key else ""
        except NotFound:
            logs = ""
        return {"job_id": job.id, "logs": logs}

    def get_test_cases(self, actor: User, job_id: str, version: Optional[str] = None) -> dict[str, Any]:
        return self._result(actor, job_id, "test_cases.json", version)

    def get_test_run(self, actor: User, job_id: str, version: Optional[str] = None) -> dict[str, Any]:
        return self._result(actor, job_id, "test_run.json", version)

    def get_report(self, actor: User, job_id: str, iam_principal: Optional[str] = None) -> dict[str, Any]:
        """A download URL of the HTML report; ``direct`` for IAM users, as trial parameters."""
        job = self._succeeded(actor, job_id)
        key = stress_messages.result_key(job.id, "report.html")
        try:
            self._blobs.size(key)
        except NotFound:
            raise NotFound(f"stress test {job_id!r} has no report (the engine that ran it writes none)") from None
        return {"url": self._blobs.presigned_get(key, self._presign_seconds),
                "direct": self._direct.copy_for(self._blobs, iam_principal, key, f"stress-tests/{job.id}/report.html")
                if self._direct else None}

    def _result(self, actor: User, job_id: str, name: str, version: Optional[str]) -> dict[str, Any]:
        if version not in (None, "", RESULT_VERSION):
            raise InvalidInput(f"version: the only result format is {RESULT_VERSION!r}, not {version!r}")
        job = self._succeeded(actor, job_id)
        try:
            table = json.loads(self._blobs.get_bytes(stress_messages.result_key(job.id, name)))
        except NotFound:
            raise NotFound(f"stress test {job_id!r} has no {name} (its results were removed)") from None
        return {"test_run_id": job.test_run_id, "version": RESULT_VERSION,
                "columns": table.get("columns", []), "records": table.get("records", [])}

    def _succeeded(self, actor: User, job_id: str) -> StressTestJob:
        job = self._job(actor, job_id)
        if job.status is not StressTestStatus.SUCCEEDED:
            raise Conflict(f"stress test {job_id!r} is {job.status.value}: results exist once it SUCCEEDED")
        return job

    def _job(self, actor: User, job_id: str) -> StressTestJob:
        require(actor, Action.MANAGE_STRESS_TESTS)
        job = self._jobs.get(job_id, self._clock())
        if job is None or not owns_or_admin(actor, job.owner_id):
            raise NotFound(f"no stress test {job_id!r}")
        return job


__all__ = ["StressTestService", "JOB_RETENTION", "RESULT_VERSION", "TRIAL_MODEL_TASKS", "best_trial"]
