"""Inference jobs, applications, predict, metrics and bundles."""
from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import Call, endpoint
from chalicelib.errors import ModelFailed
from chalicelib.schemas import (
    CreateInferenceJobRequest,
    ExportBundleRequest,
    MetricsQuery,
    PredictRequest,
    RegisterApplicationRequest,
    SetVersionRequest,
    UpdateApplicationRequest,
    UserQuery,
    app_version,
)
from chalicelib.schemas_responses_serving import (
    ApplicationDetailOut,
    ApplicationOut,
    BundleOut,
    InferenceJobCreatedOut,
    InferenceJobOut,
    MetricOut,
    PredictOut,
    EndpointCleanupOut,
    StopAllOut,
)
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/inference-jobs", "POST", "Serve the best trials of a STOPPED train job", body=CreateInferenceJobRequest,
          status=201, response=InferenceJobCreatedOut)
def create_inference_job(call: Call) -> dict:
    req = call.body
    return services().inference_jobs.create_inference_job(call.user, req.app, req.app_version, req.budget_dict())


@endpoint(bp, "/inference-jobs", "GET", "Inference jobs of a user (default: you)", query=UserQuery,
          response=list[InferenceJobOut])
def get_inference_jobs_by_user(call: Call) -> list:
    return services().inference_jobs.get_inference_jobs_by_user(call.user, call.query.user_id or call.user.id)


@endpoint(bp, "/inference-jobs/{app}", "GET", "Your inference jobs of an app", response=list[InferenceJobOut])
def get_inference_jobs_of_app(call: Call, app: str) -> list:
    return services().inference_jobs.get_inference_jobs_of_app(call.user, app)


@endpoint(bp, "/inference-jobs/{app}/{version}", "GET", "The running inference job of an app (-1: latest)",
          response=InferenceJobOut)
def get_running_inference_job(call: Call, app: str, version: str) -> dict:
    return services().inference_jobs.get_running_inference_job(call.user, app, app_version(version))


@endpoint(bp, "/inference-jobs/{app}/{version}/latest", "GET",
          "The newest inference job of an app version (-1: latest), whatever its status",
          response=InferenceJobOut)
def get_inference_job(call: Call, app: str, version: str) -> dict:
    return services().inference_jobs.get_inference_job(call.user, app, app_version(version))


@endpoint(bp, "/inference-jobs/{app}/{version}/stop", "POST", "Stop an inference job",
          response=InferenceJobOut)
def stop_inference_job(call: Call, app: str, version: str) -> dict:
    return services().inference_jobs.stop_inference_job(call.user, app, app_version(version))


@endpoint(bp, "/jobs/stop-all", "POST", "Stop every running train and inference job (superadmin)",
          response=StopAllOut)
def stop_all_jobs(call: Call) -> dict:
    return services().inference_jobs.stop_all_jobs(call.user)


@endpoint(bp, "/jobs/cleanup-endpoints", "POST",
          "Delete the endpoints (and endpoint configs, models) no live inference job serves (admins)",
          response=EndpointCleanupOut)
def cleanup_endpoints(call: Call) -> dict:
    return services().inference_jobs.cleanup_endpoints(call.user)


@endpoint(bp, "/apps", "POST", "Register an application: input type, latency SLO, default output",
          body=RegisterApplicationRequest, status=201, response=ApplicationOut)
def register_application(call: Call) -> dict:
    req = call.body
    return services().apps.register_application(call.user, req.name, req.input_type, req.default_output,
                                                req.slo_micros, req.top_n, req.capture_percent)


@endpoint(bp, "/apps", "GET", "Your applications", response=list[ApplicationOut])
def get_applications(call: Call) -> list:
    return services().apps.get_applications(call.user)


@endpoint(bp, "/apps/{app}", "GET", "An application and the version it serves", response=ApplicationDetailOut)
def get_application(call: Call, app: str) -> dict:
    return services().apps.get_application(call.user, app)


@endpoint(bp, "/apps/{app}", "PATCH", "Change an application's SLO, default output, input type or top-N",
          body=UpdateApplicationRequest, response=ApplicationOut)
def update_application(call: Call, app: str) -> dict:
    return services().apps.update_application(call.user, app, **call.body.model_dump(exclude_unset=True))


@endpoint(bp, "/apps/{app}", "DELETE", "Unregister an application (its inference jobs keep running)",
          response=ApplicationOut)
def delete_application(call: Call, app: str) -> dict:
    return services().apps.delete_application(call.user, app)


@endpoint(bp, "/apps/{app}/version", "POST", "Serve another version of the app", body=SetVersionRequest,
          response=ApplicationOut)
def set_model_version(call: Call, app: str) -> dict:
    return services().apps.set_model_version(call.user, app, call.body.version)


@endpoint(bp, "/apps/{app}/rollback", "POST", "Serve the previous version again", response=ApplicationOut)
def rollback(call: Call, app: str) -> dict:
    return services().apps.rollback(call.user, app)


@endpoint(bp, "/apps/{app}/predict", "POST", "Predict: {query}|{queries}, {input}|{input_batch}, or {instances}",
          body=PredictRequest, response=PredictOut, errors=(ModelFailed,))
def predict(call: Call, app: str) -> dict:
    answer = services().predict.predict_answer(call.user, app, call.body.payload())
    return Response(body=answer.body, status_code=200, headers=answer.headers)


@endpoint(bp, "/apps/{app}/metrics", "GET", "Requests, errors, defaults, batch sizes, latency percentiles",
          query=MetricsQuery, response=list[MetricOut])
def app_metrics(call: Call, app: str) -> list:
    return services().predict.metrics(call.user, app, call.query.minutes)


@endpoint(bp, "/bundles", "POST", "Export a trial or an app version as a self-contained bundle",
          body=ExportBundleRequest, status=201, response=BundleOut)
def export_bundle(call: Call) -> dict:
    req = call.body
    return services().inference_jobs.export_bundle(call.user, req.app, req.app_version, req.trial_id,
                                                   iam_principal=call.iam_principal)
