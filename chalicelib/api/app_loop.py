"""The loop (issue 12 item 6): an app's retrain policy and its timeline."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_loop import RemovedPolicyOut, RetrainPolicyOut, RetrainPolicyRequest, TimelineEntryOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/apps/{app}/retrain-policy", "PUT",
          "Retrain the app when a continuous test on its traffic breaches a chosen monitor",
          body=RetrainPolicyRequest, response=RetrainPolicyOut)
def set_retrain_policy(call: Call, app: str) -> dict:
    return services().retrain.set_policy(call.user, app, call.body.model_dump(exclude_none=True))


@endpoint(bp, "/apps/{app}/retrain-policy", "GET", "The app's retrain policy (404: none)", response=RetrainPolicyOut)
def get_retrain_policy(call: Call, app: str) -> dict:
    return services().retrain.get_policy(call.user, app)


@endpoint(bp, "/apps/{app}/retrain-policy", "DELETE", "Remove the app's retrain policy", response=RemovedPolicyOut)
def remove_retrain_policy(call: Call, app: str) -> dict:
    services().retrain.remove_policy(call.user, app)
    return {"app": app, "removed": True}


@endpoint(bp, "/apps/{app}/timeline", "GET",
          "The app's timeline: each step of the retrain loop with its reason, oldest first",
          response=list[TimelineEntryOut])
def get_app_timeline(call: Call, app: str) -> list:
    return services().app_timeline.get(call.user, app)
