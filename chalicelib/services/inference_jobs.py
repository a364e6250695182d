"""Inference jobs: the best trial of each model of a stopped train job, as one ensemble
served by one endpoint (seed 001's inference-job calls), and bundle export.

Which job serves a predict request (:meth:`InferenceJobService.serving_job`) comes from the
app's serving record, read with the app (``ApplicationStore.serving_state``; when that read may be
cached is services/serving_cache.py's rule): the ids of the app's live jobs. This service keeps
that record: a job's id is added before the job is stored as STARTED and removed before it is
stored as STOPPED or ERRORED, so once ``create_inference_job`` or ``stop_inference_job`` returns,
the very next request, on any instance, sees the change. A job's endpoint name, version and creation time never change, so
jobs are cached by id (bounded, no expiry): the record says which ids are live, the cache only
saves reading their unchanging details again.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from chalicelib.entities import (
    BudgetOption,
    InferenceJob,
    InferenceJobStatus,
    TrainJob,
    TrainJobStatus,
    Trial,
    TrialStatus,
    User,
    iso_or_none,
)
from chalicelib.errors import Conflict, Forbidden, NotFound, Unprocessable
from chalicelib.direct_transfers import DirectTransfers
from chalicelib.permissions import Action, owns_or_admin, require
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.services.bundles import BundleBuilder
from chalicelib.services.caches import LruCache
from chalicelib.services.gpus import GpuSupport
from chalicelib.services.train_jobs import LATEST, TrainJobService
from chalicelib.ports import (
    ApplicationStore,
    BlobStore,
    EndpointRunner,
    EndpointState,
    InferenceJobStore,
    ServingState,
    TrainJobStore,
    TrialStore,
)

log = logging.getLogger(__name__)

LIVE = (InferenceJobStatus.STARTED, InferenceJobStatus.RUNNING)
# Jobs kept by id for the predict path (their served details never change).
JOB_CACHE_ENTRIES = 4096


def best_trial_per_model(trials: list[Trial]) -> list[Trial]:
    """The best fully trained trial of each model (``Trial.fully_trained``), best score first.
    Screening trials are never served: a model with only screening trials has no member."""
    best: dict[str, Trial] = {}
    for trial in trials:
        if not trial.fully_trained:
            continue
        current = best.get(trial.model_id)
        if current is None or (trial.score or 0.0) > (current.score or 0.0):
            best[trial.model_id] = trial
    return sorted(best.values(), key=lambda t: -(t.score or 0.0))


def _nothing_to_serve(trials: list[Trial]) -> str:
    """Why a train job has no member to serve, counting the screening trials left out."""
    screened = sum(1 for t in trials if t.status is TrialStatus.COMPLETED and t.screening)
    if screened:
        return (f"has no fully trained trial to serve ({screened} completed screening trial(s), trained with "
                "EARLY_STOP / QUICK_EVAL on, are never served)")
    return "has no completed trial to serve"


class InferenceJobService:
    def __init__(
        self,
        jobs: InferenceJobStore,
        train_jobs: TrainJobStore,
        trials: TrialStore,
        train_job_service: TrainJobService,
        bundles: BundleBuilder,
        blobs: BlobStore,
        endpoints: EndpointRunner,
        stage: str,
        public_api_url: str,
        presigned_url_seconds: int,
        clock: Clock = utc_now,
        *,
        apps: ApplicationStore,
        gpus: GpuSupport = GpuSupport(),
        direct: Optional[DirectTransfers] = None,
        inference_image_uri: str = "",
    ):
        """``apps`` keeps each app's serving record (the ids of its live jobs); ``gpus`` says
        whether endpoints can get GPUs (a budget asking for some where they cannot is refused);
        ``direct``: where IAM users' exports go, for them to download straight from S3;
        ``inference_image_uri``: the image endpoints run when no managed image is needed (AWS only)."""
        self._gpus = gpus
        self._direct = direct
        self._inference_image_uri = inference_image_uri
        self._jobs = jobs
        self._apps = apps
        self._job_cache: LruCache[InferenceJob] = LruCache(JOB_CACHE_ENTRIES)
        self._train_jobs = train_jobs
        self._trials = trials
        self._train_job_service = train_job_service
        self._bundles = bundles
        self._blobs = blobs
        self._endpoints = endpoints
        self._stage = stage
        self._public_api_url = public_api_url.rstrip("/")
        self._presign_seconds = presigned_url_seconds
        self._clock = clock

    def create_inference_job(
        self, actor: User, app: str, app_version: int = LATEST, budget: Optional[dict[str, float]] = None
    ) -> dict[str, Any]:
        """Deploy the best trial of each model of the STOPPED train job ``app`` v``app_version``
        (a GPU_COUNT > 0 where endpoints get no GPU is refused: Unprocessable, see services/gpus.py)."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        self._gpus.check_serving(float((budget or {}).get(BudgetOption.GPU_COUNT.value, 0) or 0))
        train_job = self._train_job_service.resolve(actor, app, app_version)
        if train_job.status is not TrainJobStatus.STOPPED:
            raise Conflict(f"train job {app} v{train_job.app_version} is {train_job.status.value}; "
                           "an inference job needs a STOPPED train job")
        live_now = [j for j in self._jobs.list_of_app(actor.id, app) if j.status in LIVE]
        if any(j.train_job_id == train_job.id for j in live_now):
            raise Conflict(f"an inference job of {app} v{train_job.app_version} is already running")
        trials = self._trials.list_of_job(train_job.id)
        members = best_trial_per_model(trials)
        if not members:
            raise Unprocessable(f"train job {app} v{train_job.app_version} {_nothing_to_serve(trials)}")
        job_id = new_id()
        bundle_key = f"bundles/{job_id}/bundle.tar.gz"
        manifest = self._bundles.build(bundle_key, app, train_job.app_version, train_job.task, members)
        image = (manifest.get("image") or {}).get("ref") or None  # the managed image its models run in
        job = InferenceJob(
            id=job_id,
            user_id=actor.id,
            app=app,
            app_version=train_job.app_version,
            train_job_id=train_job.id,
            task=train_job.task,
            endpoint_name=f"kilele-{self._stage}-{job_id[:18]}",
            bundle_key=bundle_key,
            members=[_member(t) for t in members],
            created_at=self._clock(),
            budget=budget or {},
            predictor_url=f"{self._public_api_url}/apps/{app}/predict",
        )
        self._apps.add_live_jobs(actor.id, app, [job.id, *self._untracked_live(actor.id, app, live_now)])
        self._jobs.add(job)
        gpu = float((budget or {}).get(BudgetOption.GPU_COUNT.value, 0)) > 0
        try:
            self._endpoints.deploy(job.endpoint_name, bundle_key, gpu=gpu, image=image)
        except Exception as e:
            self._leave_live(job, InferenceJobStatus.ERRORED, error=f"the endpoint could not be created: {e}")
            self._discard_endpoint(job)
            raise
        job = self._refresh(job)
        return {"id": job.id, "app": job.app, "app_version": job.app_version, "train_job_id": job.train_job_id,
                "predictor_host": job.predictor_host, "query_host": job.predictor_host,
                "predictor_url": job.predictor_url, "status": job.status.value, "error": job.error}

    def _untracked_live(self, user_id: str, app: str, listed: list[InferenceJob]) -> list[str]:
        """Live jobs of an app whose row does not record them yet (jobs from before the serving
        record), each checked with a consistent read (the listing's index may lag)."""
        if self._apps.serving_state(user_id, app).tracked:
            return []
        return [j.id for j in listed if (fresh := self._jobs.get(j.id)) and fresh.status in LIVE]

    def _leave_live(self, job: InferenceJob, status: InferenceJobStatus, error: Optional[str] = None) -> bool:
        """Stop serving ``job`` (out of the app's serving record first), then store ``status``."""
        self._apps.remove_live_job(job.user_id, job.app, job.id)
        return self._jobs.set_status(job.id, status, LIVE, at=self._clock(), error=error)

    def _refresh(self, job: InferenceJob) -> InferenceJob:
        """Bring a live job in line with its endpoint (created, failed, gone; restarted: the job
        stays live while its endpoint's runner starts the dead server again, and records it)."""
        if job.status not in LIVE:
            return job
        state = self._endpoints.state(job.endpoint_name)
        changed = self._record_restarts(job, state)
        if state.status == "InService" and job.status is InferenceJobStatus.STARTED:
            self._jobs.set_status(job.id, InferenceJobStatus.RUNNING, (InferenceJobStatus.STARTED,))
        elif state.status in ("Failed", "Deleted"):
            if self._leave_live(job, InferenceJobStatus.ERRORED,
                                error=state.reason or f"the endpoint is {state.status.lower()}"):
                self._discard_endpoint(job)  # a failed endpoint's config and model, its scaling
        elif not changed:
            return job
        return self._jobs.get(job.id) or job

    def _discard_endpoint(self, job: InferenceJob) -> None:
        """Delete what was made for an ERRORED job's endpoint; if that fails too, say so in the
        log (``cleanup_endpoints`` removes it later)."""
        try:
            self._endpoints.delete(job.endpoint_name)
        except Exception as e:  # noqa: BLE001 - the job's own error is what its caller sees
            log.warning("inference job %s: could not delete endpoint %s: %s", job.id, job.endpoint_name, e)

    def cleanup_endpoints(self, actor: User) -> dict[str, Any]:
        """Delete every endpoint (and endpoint config, model) of this stage that no live inference
        job serves: what failures before issue 13 left billing (admins only)."""
        require(actor, Action.CLEAN_UP_ENDPOINTS)
        live = {job.endpoint_name for job in self._jobs.list_all() if job.status in LIVE}
        deleted, failed, kept = [], [], []
        for name in self._endpoints.names(f"kilele-{self._stage}-"):
            if name in live:
                kept.append(name)
                continue
            try:
                self._endpoints.delete(name)
                deleted.append(name)
            except Exception as e:  # noqa: BLE001 - the others are still deleted; this one is reported
                log.warning("cleanup: could not delete endpoint %s: %s", name, e)
                failed.append({"name": name, "error": str(e)[:500]})
        return {"deleted": deleted, "failed": failed, "kept": kept}

    def _record_restarts(self, job: InferenceJob, state: EndpointState) -> bool:
        """Store the endpoint's restarts on the job when they changed (a runner that cannot count
        them, SageMaker's, reports None: nothing is stored); True if stored."""
        if state.restarts is None:
            return False
        last = None if state.last_restart_at is None else {"reason": state.last_restart_reason,
                                                            "at": iso_or_none(state.last_restart_at)}
        if (state.restarts, last) == (job.restarts, job.last_restart):
            return False
        self._jobs.set_restarts(job.id, state.restarts, last)
        return True

    def report_endpoint_failure(self, job: InferenceJob) -> InferenceJob:
        """Called when predict could not reach the endpoint: record the failure if it is one."""
        current = self._jobs.get(job.id) or job
        if current.status not in LIVE:  # no longer live, yet it was served: forget it for good
            self._apps.remove_live_job(job.user_id, job.app, job.id)
        return self._refresh(current)

    def serving_job(self, user_id: str, app: str, state: ServingState) -> InferenceJob:
        """The job that answers ``app``'s predict requests: among the live ids of ``state``, the
        app's pinned version, else the newest one (NotFound if none)."""
        version = state.app.version if state.app and state.app.version else LATEST
        if not state.tracked:  # an app whose row never recorded its jobs
            return self.running_job(user_id, app, version)
        live = [job for job in map(self._live_job, sorted(state.live_job_ids)) if job is not None]
        if version != LATEST:
            live = [j for j in live if j.app_version == version]
        if not live:
            raise NotFound(f"app {app!r}{'' if version == LATEST else f' v{version}'} has no running inference job")
        return max(live, key=lambda j: (j.app_version, j.created_at))

    def _live_job(self, job_id: str) -> Optional[InferenceJob]:
        job = self._job_cache.get(job_id)
        if job is None:
            job = self._jobs.get(job_id)  # None: recorded as live but not stored (yet, or ever)
            if job is not None:
                self._job_cache.put(job_id, job)
        return job

    def has_jobs(self, user_id: str, app: str) -> bool:
        """Whether ``app`` ever had an inference job of this user (it is known, even if stopped)."""
        return bool(self._jobs.list_of_app(user_id, app))

    def get_inference_job(self, actor: User, app: str, app_version: int = LATEST) -> dict[str, Any]:
        """Seed 000's ``get_inference_job``: the newest inference job of ``app`` at ``app_version``
        (-1: the newest version), running or not, with its workers."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        jobs = self._jobs.list_of_app(actor.id, app)
        if app_version != LATEST:
            jobs = [j for j in jobs if j.app_version == app_version]
        if not jobs:
            version = "" if app_version == LATEST else f" v{app_version}"
            raise NotFound(f"app {app!r}{version} has no inference job")
        return self._refresh(max(jobs, key=lambda j: (j.app_version, j.created_at))).to_dict()

    def get_inference_jobs_by_user(self, actor: User, user_id: str) -> list[dict[str, Any]]:
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        if not owns_or_admin(actor, user_id):
            raise Forbidden("only admins can list other users' inference jobs")
        return [self._refresh(j).to_dict() for j in self._jobs.list_by_user(user_id)]

    def get_inference_jobs_of_app(self, actor: User, app: str) -> list[dict[str, Any]]:
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        return [self._refresh(j).to_dict() for j in sorted(self._jobs.list_of_app(actor.id, app),
                                                           key=lambda j: j.created_at)]

    def running_job(self, user_id: str, app: str, app_version: int = LATEST) -> InferenceJob:
        """The live inference job of ``app`` at ``app_version`` (-1: the newest live one)."""
        live = [j for j in self._jobs.list_live_of_app(user_id, app) if j.status in LIVE]
        if app_version != LATEST:
            live = [j for j in live if j.app_version == app_version]
        if not live:
            version = "" if app_version == LATEST else f" v{app_version}"
            raise NotFound(f"app {app!r}{version} has no running inference job")
        return max(live, key=lambda j: (j.app_version, j.created_at))

    def get_running_inference_job(self, actor: User, app: str, app_version: int = LATEST) -> dict[str, Any]:
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        return self._refresh(self.running_job(actor.id, app, app_version)).to_dict()

    def stop_inference_job(self, actor: User, app: str, app_version: int = LATEST) -> dict[str, Any]:
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        job = self.running_job(actor.id, app, app_version)
        self._stop(job)
        return (self._jobs.get(job.id) or job).to_dict()

    def _stop(self, job: InferenceJob) -> None:
        if self._leave_live(job, InferenceJobStatus.STOPPED):
            self._endpoints.delete(job.endpoint_name)

    def stop_all_jobs(self, actor: User) -> dict[str, Any]:
        """Stop every running train and inference job on the platform (superadmin only)."""
        require(actor, Action.STOP_ALL_JOBS)
        stopped = 0
        for job in self._jobs.list_all():
            if job.status in LIVE:
                self._stop(job)
                stopped += 1
        return {"train_jobs_stopped": self._train_job_service.stop_all_train_jobs(), "inference_jobs_stopped": stopped}

    def resume_endpoints(self, reason: str) -> list[dict[str, Any]]:
        """Serve again every live job whose endpoint is gone (the local stack calls it at
        start-up: its endpoint processes ended with it); a job whose endpoint cannot be started
        again ends ERRORED with ``reason`` and why. Returns the jobs' new states."""
        resumed = []
        for job in self._jobs.list_all():
            # A Restarting endpoint is being started again by its runner already.
            if job.status not in LIVE or self._endpoints.state(job.endpoint_name).status in ("InService", "Restarting"):
                continue
            gpu = float((job.budget or {}).get(BudgetOption.GPU_COUNT.value, 0)) > 0
            try:
                image = self._bundles.serving_image([t for t in (self._trials.get(m["id"]) for m in job.members) if t])
                self._endpoints.deploy(job.endpoint_name, job.bundle_key, gpu=gpu, image=image["ref"] if image else None)
            except Exception as e:  # noqa: BLE001 - this job ends with why; the others go on
                self._leave_live(job, InferenceJobStatus.ERRORED, error=f"{reason}; its endpoint could not be "
                                 f"started again: {e}")
                self._discard_endpoint(job)
            resumed.append(self._refresh(self._jobs.get(job.id) or job).to_dict())
        return resumed

    def export_bundle(self, actor: User, app: str, app_version: int = LATEST,
                      trial_id: Optional[str] = None, iam_principal: Optional[str] = None) -> dict[str, Any]:
        """A download URL of a bundle: one trial, or the ensemble an inference job would serve.

        For a request signed by an IAM user (``iam_principal``) the bundle is written under that
        user's ``direct/<name>/`` prefix, and ``direct`` says where: only that IAM user's
        credentials may read it there (chalicelib/direct_transfers.py); ``direct`` is null otherwise.
        ``image_uri``: the image an endpoint of the bundle runs here (its managed image, else the
        stack's inference image; null where there is none, as locally), for users who deploy it
        with their own SageMaker tooling (the SDK's ``kilele.sagemaker_model``)."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        if trial_id:
            trial = self._train_job_service.trial(actor, trial_id)
            if trial.status is not TrialStatus.COMPLETED:
                raise Conflict(f"trial {trial_id!r} is {trial.status.value}; only COMPLETED trials can be exported")
            train_job: TrainJob = self._train_jobs.get(trial.train_job_id)  # type: ignore[assignment]
            members = [trial]
        else:
            train_job = self._train_job_service.resolve(actor, app, app_version)
            trials = self._trials.list_of_job(train_job.id)
            members = best_trial_per_model(trials)
            if not members:
                raise Unprocessable(f"train job {app} v{train_job.app_version} "
                                    f"{_nothing_to_serve(trials).replace('to serve', 'to export')}")
        key = f"exports/{new_id()}/bundle.tar.gz"
        direct_key = self._direct.key_for(iam_principal, key) if self._direct else None
        key = direct_key or key
        manifest = self._bundles.build(key, train_job.app, train_job.app_version, train_job.task, members)
        return {"url": self._blobs.presigned_get(key, self._presign_seconds), "manifest": manifest,
                "direct": self._direct.target(key) if self._direct and direct_key else None,
                "image_uri": (manifest.get("image") or {}).get("ref") or self._inference_image_uri or None}


def _member(trial: Trial) -> dict[str, Any]:
    return {"id": trial.id, "model_name": trial.model_name, "knobs": trial.knobs, "score": trial.score}
