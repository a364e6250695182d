"""The steps of a train-job worker slot (the Lambda states of train_worker.asl.json).

Each step gets the slot's state (the execution's JSON) and returns the next state. The steps
are stateless: budgets, the advisor's history and the workers' progress are read from
DynamoDB every time, so a retried or continued step does the right thing.
"""
from __future__ import annotations

import hashlib

from dataclasses import dataclass
from datetime import timedelta
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from chalicelib.advisor import Proposal, TrialRecord
from chalicelib.entities import (
    BudgetOption,
    TrainJob,
    TrainJobStatus,
    Trial,
    TrialStatus,
    WorkerStatus,
)
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.ports import BlobStore, CounterStore, DatasetStore, ModelStore, TrainJobStore, TrialStore, WorkflowRunner
from chalicelib.entities import StopReason
from chalicelib.services import trial_messages
from chalicelib.services.model_images import ModelImages

Advisor = Callable[..., Optional[Proposal]]
_STATE_KEYS = ("train_job_id", "worker_key", "model_id", "slot", "generation", "consecutive_errors", "trials_in_execution")
_PROPOSAL_ATTEMPTS = 5
# Warm start: the best fully trained trials of the user's earlier STOPPED jobs of the same model
# and task seed a new job's search (the advisor tries them before random start-up draws). Only
# looked up while the model has few trials in this job; bounded reads.
WARM_START_WINDOW = 10  # trials of the model in this job below which earlier jobs are read
WARM_START_JOBS = 5  # the most recent earlier jobs
WARM_START_PER_JOB = 2  # best trials taken from each


@dataclass(frozen=True)
class TrialLoopConfig:
    bucket: str
    max_consecutive_errors: int
    max_trials_per_execution: int
    trial_timeout_seconds: int
    heartbeat_seconds: int
    heartbeat_timeout_seconds: int
    memory_limit_mb: int
    advisor_strategy: str
    #: How long a run may wait for its job to start (the heartbeat timeout counts from the start).
    queue_timeout_seconds: int = 3600


def slot_state(job_id: str, worker_key: str, model_id: str, slot: int, generation: int = 0) -> dict[str, Any]:
    """The input of a worker slot's first execution."""
    return {
        "train_job_id": job_id,
        "worker_key": worker_key,
        "model_id": model_id,
        "slot": slot,
        "generation": generation,
        "consecutive_errors": 0,
        "trials_in_execution": 0,
    }


def execution_name(job_id: str, worker_key: str, generation: int) -> str:
    """Unique, <= 80 characters, as Step Functions requires."""
    return f"{job_id}-{hashlib.sha1(worker_key.encode()).hexdigest()[:8]}-g{generation}"


def _base(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**{k: state[k] for k in _STATE_KEYS}, **changes}


class TrialLoop:
    def __init__(
        self,
        jobs: TrainJobStore,
        trials: TrialStore,
        counters: CounterStore,
        models: ModelStore,
        datasets: DatasetStore,
        blobs: BlobStore,
        workflows: WorkflowRunner,
        advisor: Advisor,
        config: TrialLoopConfig,
        clock: Clock = utc_now,
        images: Optional[ModelImages] = None,
    ):
        """``images``: the managed images models' dependencies resolved to (None: every trial
        runs in the worker runtime)."""
        self._images = images
        self._jobs = jobs
        self._trials = trials
        self._counters = counters
        self._models = models
        self._datasets = datasets
        self._blobs = blobs
        self._workflows = workflows
        self._advisor = advisor
        self._config = config
        self._clock = clock

    # -- propose -----------------------------------------------------------------------------

    def propose(self, state: dict[str, Any]) -> dict[str, Any]:
        job = self._job(state)
        decision = self._stop_reason(job, state)
        if decision:
            return _base(state, proposal=_stop(*decision))
        if state["trials_in_execution"] >= self._config.max_trials_per_execution:
            return _base(state, proposal={"action": "continue"})
        model = self._models.get(state["model_id"])
        if model is None:
            return _base(state, proposal=_stop(StopReason.MODEL_DELETED, "the model was deleted"))
        waiting = self._images.gate(model) if self._images else None
        if waiting is not None:  # its image builds (the slot waits and asks again) or failed
            return _base(state, proposal=waiting)
        if model.knob_config is None:
            return _base(state, proposal=self._describe(job, model))
        trial_limit = int(job.budget_value(BudgetOption.MODEL_TRIAL_COUNT))
        number = self._counters.increment(
            f"trials#{job.id}#{model.id}", limit=None if trial_limit < 0 else trial_limit
        )
        if number is None:
            return _base(state, proposal=_stop(StopReason.TRIAL_BUDGET, "MODEL_TRIAL_COUNT reached"))
        trials_left = None if trial_limit < 0 else trial_limit - number + 1
        trial = self._new_trial(job, model, state, number, trials_left)
        if trial is None:
            return _base(state, proposal=_stop(StopReason.KNOB_SPACE_EXHAUSTED, "the knob space is exhausted"))
        # stop_train_job may have listed the job's trials between our status check and the
        # trial's creation: look again, so a stopped job never keeps a running trial.
        job = self._job(state)
        if job.status.is_final:
            self._trials.finish(trial.id, TrialStatus.TERMINATED, self._clock(), error_message="stopped with the train job")
            return _base(state, proposal=_stop(StopReason.JOB_FINAL, f"the train job is {job.status.value}"))
        self._jobs.set_status(job.id, TrainJobStatus.RUNNING, only_from=(TrainJobStatus.STARTED,))
        return _base(state, proposal={"action": "run", "trial": self._message(job, model, trial), **self._timeouts()})

    def _stop_reason(self, job: TrainJob, state: dict[str, Any]) -> Optional[tuple[StopReason, str]]:
        if job.status.is_final:
            return StopReason.JOB_FINAL, f"the train job is {job.status.value}"
        if state["consecutive_errors"] >= self._config.max_consecutive_errors:
            return StopReason.CONSECUTIVE_ERRORS, f"{state['consecutive_errors']} trials in a row failed"
        hours = job.budget_value(BudgetOption.TIME_HOURS)
        if self._clock() >= job.created_at + timedelta(hours=hours):
            return StopReason.TIME_BUDGET, "TIME_HOURS reached"
        return None

    def _new_trial(self, job: TrainJob, model: Any, state: dict[str, Any], number: int,
                   trials_left: Optional[int]) -> Optional[Trial]:
        history = [
            TrialRecord(knobs=t.knobs, score=t.score, status=t.status.value, screening=t.screening)
            for t in self._trials.list_of_job(job.id)
            if t.model_id == model.id and not t.model_check
        ]
        prior = self._warm_start(job, model.id) if len(history) < WARM_START_WINDOW else []
        trial_id = new_id()
        for attempt in range(_PROPOSAL_ATTEMPTS):
            seed = int(hashlib.sha256(f"{job.id}#{model.id}#{number}#{attempt}".encode()).hexdigest()[:8], 16)
            # trials_left: the budget's last trial is a full one (screening trials are never served)
            proposal = self._advisor(model.knob_config, history, seed=seed, strategy=self._config.advisor_strategy,
                                     trials_left=trials_left, prior=prior)
            if proposal is None:
                return None
            # Concurrent slots may compute the same proposal: the claim makes it one trial's.
            if self._trials.claim_fingerprint(job.id, model.id, proposal.fingerprint, trial_id):
                now = self._clock()
                # The trial loop is the trial record's only writer: the trial is RUNNING from its
                # dispatch (queued or running, users see it running); the worker's actual start
                # comes back with its result or error report (record_trial*).
                trial = Trial(
                    id=trial_id,
                    train_job_id=job.id,
                    model_id=model.id,
                    model_name=model.name,
                    worker_key=state["worker_key"],
                    number=number,
                    knobs=proposal.knobs,
                    fingerprint=proposal.fingerprint,
                    created_at=now,
                    status=TrialStatus.RUNNING,
                    started_at=now,
                    screening=proposal.screening,
                    **trial_messages.trial_keys(trial_id),
                )
                self._trials.add(trial)
                return trial
            history.append(TrialRecord(knobs=proposal.knobs, score=None, status="RUNNING", screening=proposal.screening))
        return None

    def _warm_start(self, job: TrainJob, model_id: str) -> list[dict[str, Any]]:
        """Knobs of the best fully trained trials of ``model_id`` in the user's earlier STOPPED
        jobs of the same task, the most recent job first, each job's best first."""
        earlier = sorted(
            (j for j in self._jobs.list_by_user(job.user_id)
             if j.id != job.id and j.task == job.task and model_id in j.model_ids
             and j.status is TrainJobStatus.STOPPED and j.created_at < job.created_at),
            key=lambda j: j.created_at, reverse=True,
        )
        prior: list[dict[str, Any]] = []
        for earlier_job in earlier[:WARM_START_JOBS]:
            done = [t for t in self._trials.list_of_job(earlier_job.id) if t.model_id == model_id and t.fully_trained]
            done.sort(key=lambda t: (-(t.score or 0.0), t.number))
            prior.extend(t.knobs for t in done[:WARM_START_PER_JOB])
        return prior

    def _datasets_of(self, job: TrainJob) -> tuple[Any, Any]:
        train, val = self._datasets.get(job.train_dataset_id), self._datasets.get(job.val_dataset_id)
        if train is None or val is None:
            raise NotFound("a dataset of the train job no longer exists")
        return train, val

    def _message_config(self) -> trial_messages.TrialMessageConfig:
        return trial_messages.TrialMessageConfig(
            bucket=self._config.bucket,
            trial_timeout_seconds=self._config.trial_timeout_seconds,
            memory_limit_mb=self._config.memory_limit_mb,
            heartbeat_seconds=self._config.heartbeat_seconds,
        )

    def _message(self, job: TrainJob, model: Any, trial: Trial) -> dict[str, Any]:
        train, val = self._datasets_of(job)
        return self._in_image(model, trial_messages.trial_message(job, model, train, val, trial,
                                                                  self._message_config()))

    def _describe(self, job: TrainJob, model: Any) -> dict[str, Any]:
        train, val = self._datasets_of(job)
        message = trial_messages.describe_message(job, model, train, val, f"describe-{new_id()}", self._message_config())
        return {"action": "describe", "trial": self._in_image(model, message), **self._timeouts()}

    def _in_image(self, model: Any, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` naming the image the model runs in (``image``: its name and reference),
        if its dependencies resolved to one: the dispatcher runs the worker there."""
        runtime = self._images.runtime(model) if self._images else None
        return {**message, "image": runtime} if runtime else message

    def _timeouts(self) -> dict[str, int]:
        return {
            # The worker enforces the trial timeout itself; the state's own timeout is a backstop.
            "timeout_seconds": self._config.trial_timeout_seconds + 300,
            "heartbeat_timeout_seconds": self._config.heartbeat_timeout_seconds,
            "queue_timeout_seconds": self._config.queue_timeout_seconds,
        }

    # -- record ------------------------------------------------------------------------------

    def record_knob_config(self, state: dict[str, Any]) -> dict[str, Any]:
        from chalicelib.advisor import parse_knob_config

        knob_config = (state.get("result") or {}).get("knob_config")
        try:
            parse_knob_config(knob_config)
        except (TypeError, ValueError) as e:
            message = (state.get("proposal") or {}).get("trial")
            if message:  # the check failed: a record with its logs, then the worker fails with why
                self._record_failed_check(state, message, "InvalidKnobConfig", f"the knob config is not valid: {e}", None)
            raise Unprocessable(f"the model's knob config is not valid: {e}") from e
        self._models.set_knob_config(state["model_id"], knob_config)
        return _base(state)

    def record_trial(self, state: dict[str, Any]) -> dict[str, Any]:
        result = state.get("result") or {}
        trial_id = state["proposal"]["trial"]["id"]
        self._trials.finish(
            trial_id,
            TrialStatus.COMPLETED,
            self._clock(),
            score=float(result["score"]),
            model_seconds=result.get("model_seconds"),
            worker_seconds=result.get("worker_seconds"),
            onnx_key=result.get("onnx_key"),
            started_at=_stored_time(trial_messages.parse_time(result.get("started_at"))),
        )
        return _base(state, consecutive_errors=0, trials_in_execution=state["trials_in_execution"] + 1)

    def record_trial_failure(self, state: dict[str, Any]) -> dict[str, Any]:
        failure = state.get("failure") or {}
        message = state["proposal"]["trial"]
        # The worker's error report (written before SendTaskFailure; moto passes the failure's
        # Cause on as null). None when the worker died or went silent: then the failure's name.
        report = self._error_report(message)
        never_started = trial_messages.queue_timeout(state, failure)
        if never_started:
            report = {**report, "error_type": trial_messages.QUEUE_TIMEOUT_ERROR, "message": never_started}
        error = report["error_type"] or failure.get("Error") or "TrialError"
        if message.get("kind") == "describe":
            detail = report["message"] or self._log_tail(message["logs_key"])
            self._jobs.update_worker(
                state["train_job_id"], state["worker_key"], error=f"loading the model failed ({error}): {detail}"[:2000]
            )
            self._record_failed_check(state, message, error, detail, report["started_at"])
        else:
            job = self._jobs.get(state["train_job_id"])
            status = TrialStatus.TERMINATED if job and job.status.is_final else TrialStatus.ERRORED
            self._trials.finish(
                message["id"],
                status,
                self._clock(),
                error_type=error,
                error_message=report["message"] or failure.get("Cause") or error,
                started_at=_stored_time(report["started_at"]),
            )
        return _base(
            state,
            consecutive_errors=state["consecutive_errors"] + 1,
            trials_in_execution=state["trials_in_execution"] + 1,
        )

    def _record_failed_check(self, state: dict[str, Any], message: dict[str, Any], error: str, detail: str,
                             started_at: Optional[datetime]) -> None:
        """A failed model check becomes a record among the job's trials (``model_check``), with
        the check's log as its logs, so users see it where they look for trials (once: a retried
        step finds it recorded)."""
        if self._trials.get(message["id"]) is not None:
            return
        now = self._clock()
        self._trials.add(Trial(
            id=message["id"], train_job_id=state["train_job_id"], model_id=message["model_id"],
            model_name=message["model_name"], worker_key=state["worker_key"], number=0, knobs={},
            fingerprint="model-check", created_at=now, status=TrialStatus.RUNNING, started_at=now,
            logs_key=message["logs_key"], model_check=True,
        ))
        self._trials.finish(message["id"], TrialStatus.ERRORED, now, error_type=error,
                            error_message=detail[:trial_messages.ERROR_MESSAGE_MAX_CHARS],
                            started_at=_stored_time(started_at))

    def _error_report(self, message: dict[str, Any]) -> dict[str, Any]:
        key = message.get("error_key") or trial_messages.beside_log(message["logs_key"])["error_key"]
        try:
            raw = self._blobs.get_bytes(key)
        except NotFound:
            raw = b""
        return trial_messages.read_error_report(raw)

    def _log_tail(self, key: str, lines: int = 5) -> str:
        try:
            text = self._blobs.get_bytes(key).decode("utf-8", "replace")
        except NotFound:
            return "no log was written"
        return " | ".join(text.strip().splitlines()[-lines:])

    # -- lifecycle ---------------------------------------------------------------------------

    def continue_worker(self, state: dict[str, Any]) -> dict[str, Any]:
        generation = state["generation"] + 1
        next_state = _base(state, generation=generation, trials_in_execution=0)
        arn = self._workflows.start(execution_name(state["train_job_id"], state["worker_key"], generation), next_state)
        self._jobs.update_worker(state["train_job_id"], state["worker_key"], execution_arn=arn)
        return next_state

    def finish_worker(self, state: dict[str, Any]) -> dict[str, Any]:
        error = _stop_error(state.get("proposal") or {})
        job = self._jobs.get(state["train_job_id"])
        worker = job.workers.get(state["worker_key"]) if job else None
        if error and worker is not None and worker.error:  # e.g. why its model checks failed
            error = f"{error}: {worker.error}"
        self._end_worker(state, WorkerStatus.STOPPED, error)
        return _base(state)

    def fail_worker(self, state: dict[str, Any]) -> dict[str, Any]:
        failure = state.get("failure") or {}
        self._end_worker(state, WorkerStatus.ERRORED, f"{failure.get('Error')}: {failure.get('Cause')}")
        return _base(state)

    def _end_worker(self, state: dict[str, Any], status: WorkerStatus, error: Optional[str]) -> None:
        fields: dict[str, Any] = {"status": status, "stopped_at": self._clock()}
        if error:
            fields["error"] = error[:2000]
        job_id = state["train_job_id"]
        self._jobs.update_worker(job_id, state["worker_key"], **fields)
        job = self._jobs.get(job_id)
        if job is None or any(w.status is WorkerStatus.RUNNING for w in job.workers.values()):
            return
        final, error = self._outcome(job)
        self._jobs.set_status(
            job_id, final, only_from=(TrainJobStatus.STARTED, TrainJobStatus.RUNNING), at=self._clock(),
            error=error[:2000] if error else None,
        )

    def _outcome(self, job: TrainJob) -> tuple[TrainJobStatus, Optional[str]]:
        """How a job ends once its last worker has: ERRORED when every worker broke down (the
        platform's fault) or when no trial completed (the model failed its check or every trial
        failed: nothing to serve), with why; else STOPPED."""
        worker_errors = "; ".join(sorted({w.error for w in job.workers.values() if w.error}))
        if all(w.status is WorkerStatus.ERRORED for w in job.workers.values()):
            return TrainJobStatus.ERRORED, worker_errors or "every worker failed"
        trials = self._trials.list_of_job(job.id)
        if any(t.status is TrialStatus.COMPLETED and not t.model_check for t in trials):
            return TrainJobStatus.STOPPED, None
        reasons = ["no trial completed"]
        failed = [t for t in trials if t.status is TrialStatus.ERRORED]
        if failed:
            last = max(failed, key=lambda t: (t.stopped_at or t.created_at, t.number))
            what = "the model check failed" if last.model_check else f"trial {last.number} failed"
            reasons.append(f"{what} ({last.id}): {last.error_type}: {last.error_message}")
        if worker_errors:
            reasons.append(f"workers: {worker_errors}")
        return TrainJobStatus.ERRORED, "; ".join(reasons)

    def _job(self, state: dict[str, Any]) -> TrainJob:
        job = self._jobs.get(state["train_job_id"])
        if job is None:
            raise NotFound(f"no train job {state['train_job_id']!r}")
        return job


def _stop(reason: StopReason, detail: str) -> dict[str, Any]:
    """A stop proposal: the code decides (finish_worker), the detail is for people."""
    return {"action": "stop", "reason": reason.value, "detail": detail}


def _stop_error(proposal: dict[str, Any]) -> Optional[str]:
    """The worker's error for a stop proposal: its detail when the code is an error, else None."""
    try:
        reason = StopReason(proposal.get("reason"))
    except ValueError:
        return None
    return (proposal.get("detail") or reason.value) if reason.is_error else None


def _stored_time(value: Optional[datetime]) -> Optional[str]:
    """A time as the trial store keeps it (``TrialStore.finish`` takes stored values; None: unset)."""
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


__all__ = ["TrialLoop", "TrialLoopConfig", "slot_state", "execution_name"]
