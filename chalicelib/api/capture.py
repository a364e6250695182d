"""Traffic capture: ground-truth labels by query id, and where an app's capture files are.
(An app's capture percentage is set with its other settings: POST /apps, PATCH /apps/{app}.)"""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_capture import LabelsRequest
from chalicelib.schemas_responses_serving import CaptureOut, LabelsReceivedOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/apps/{app}/labels", "POST", "Send ground-truth labels of answered queries: {labels: [{query_id, label}]}",
          body=LabelsRequest, status=201, response=LabelsReceivedOut)
def send_labels(call: Call, app: str) -> dict:
    return services().labels.send_labels(call.user, app, call.body.pairs())


@endpoint(bp, "/apps/{app}/capture", "GET", "An app's capture percentage and where its captured traffic and labels are",
          response=CaptureOut)
def capture_settings(call: Call, app: str) -> dict:
    return services().labels.capture_settings(call.user, app)
