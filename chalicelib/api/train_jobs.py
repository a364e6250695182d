"""Train jobs and their trials (seed 001's train-job calls)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas import BestTrialsQuery, CreateTrainJobRequest, UserQuery, app_version
from chalicelib.schemas_responses import (
    TrainJobCreatedOut,
    TrainJobDetailOut,
    TrainJobOut,
    TrialDetailOut,
    TrialLogsOut,
    TrialOut,
    TrialParametersOut,
)
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/train-jobs", "POST", "Create and start a train job (hyperparameter search)",
          body=CreateTrainJobRequest, status=201, response=TrainJobCreatedOut)
def create_train_job(call: Call) -> dict:
    req = call.body
    return services().train_jobs.create_train_job(
        call.user, req.app, req.task, req.train_dataset_id, req.val_dataset_id, req.budget_dict(),
        model_ids=req.models, train_args=req.train_args,
    )


@endpoint(bp, "/train-jobs", "GET", "Train jobs of a user (default: you; others: admins)", query=UserQuery,
          response=list[TrainJobOut])
def get_train_jobs_by_user(call: Call) -> list:
    return services().train_jobs.get_train_jobs_by_user(call.user, call.query.user_id or call.user.id)


@endpoint(bp, "/train-jobs/{app}", "GET", "Your train jobs of an app", response=list[TrainJobOut])
def get_train_jobs_of_app(call: Call, app: str) -> list:
    return services().train_jobs.get_train_jobs_of_app(call.user, app)


@endpoint(bp, "/train-jobs/{app}/{version}", "GET", "A train job with its workers (-1: latest version)",
          response=TrainJobDetailOut)
def get_train_job(call: Call, app: str, version: str) -> dict:
    return services().train_jobs.get_train_job(call.user, app, app_version(version))


@endpoint(bp, "/train-jobs/{app}/{version}/stop", "POST", "Stop a train job", response=TrainJobDetailOut)
def stop_train_job(call: Call, app: str, version: str) -> dict:
    return services().train_jobs.stop_train_job(call.user, app, app_version(version))


@endpoint(bp, "/train-jobs/{app}/{version}/trials", "GET", "All trials of a train job, oldest first",
          response=list[TrialOut])
def get_trials_of_train_job(call: Call, app: str, version: str) -> list:
    return services().train_jobs.get_trials_of_train_job(call.user, app, app_version(version))


@endpoint(bp, "/train-jobs/{app}/{version}/best-trials", "GET", "The best COMPLETED trials, best first",
          query=BestTrialsQuery, response=list[TrialOut])
def get_best_trials_of_train_job(call: Call, app: str, version: str) -> list:
    return services().train_jobs.get_best_trials_of_train_job(
        call.user, app, app_version(version), call.query.max_count
    )


@endpoint(bp, "/trials/{trial_id}", "GET", "One trial", response=TrialDetailOut)
def get_trial(call: Call, trial_id: str) -> dict:
    return services().train_jobs.get_trial(call.user, trial_id)


@endpoint(bp, "/trials/{trial_id}/logs", "GET", "A trial's logs", response=TrialLogsOut)
def get_trial_logs(call: Call, trial_id: str) -> dict:
    return services().train_jobs.get_trial_logs(call.user, trial_id)


@endpoint(bp, "/trials/{trial_id}/parameters", "GET", "A download URL of a trial's parameters (.npz)",
          response=TrialParametersOut)
def get_trial_parameters(call: Call, trial_id: str) -> dict:
    return services().train_jobs.get_trial_parameters(call.user, trial_id, iam_principal=call.iam_principal)
