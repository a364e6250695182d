"""Kilele's Chalice app: registers the blueprints and event handlers. No logic lives here."""
import sys

from chalice import Chalice

from chalicelib import SERVICE_NAME, resources
from chalicelib.api import (auth, capture, datasets, images, meta, models, projects, queues, serving, stress_tests,
                            train_jobs, users)
from chalicelib.api import events as events_api
from chalicelib.api import schedules as schedules_api
from chalicelib.api import continuous_tests as continuous_tests_api
from chalicelib.api import ct_schedules as ct_schedules_api
from chalicelib.api import platform_images as platform_images_api
from chalicelib.api import app_loop as app_loop_api
from chalicelib.api.http import uniform_errors
from chalicelib.deploy_guard import refuse_chalice_deploy
from chalicelib.settings import Settings
from chalicelib.workflows import aws_events
from chalicelib.workflows.handlers import HANDLERS
from chalicelib.workflows import schedule_handler
from chalicelib.wiring import services

refuse_chalice_deploy(sys.argv)  # CDK (infra/) is the one deploy path: `chalice deploy`/`package` are refused
app = Chalice(app_name=SERVICE_NAME)
app.register_middleware(uniform_errors, "http")

for blueprint in (meta.bp, auth.bp, users.bp, datasets.bp, models.bp, train_jobs.bp, serving.bp, queues.bp,
                  projects.bp, stress_tests.bp, images.bp, capture.bp):
    app.register_blueprint(blueprint)
app.register_blueprint(events_api.bp)  # GET /events (issue 12)
app.register_blueprint(schedules_api.bp)  # the local scheduler's manual clock (issue 12)
app.register_blueprint(continuous_tests_api.bp)  # CT instances and continuous tests (issue 12)
app.register_blueprint(ct_schedules_api.bp)  # CT instances' schedules with a data source (issue 12)
app.register_blueprint(app_loop_api.bp)  # apps' retrain policies and timelines (issue 12)
app.register_blueprint(platform_images_api.bp)  # `kilele images build` (issue 13)


def _register_workflow_handler(name: str) -> None:
    # One Lambda per Step Functions task state (the local stack calls the same HANDLERS).
    app.lambda_function(name=name)(lambda event, context: HANDLERS[name](event))


for _name in HANDLERS:
    _register_workflow_handler(_name)


@app.lambda_function(name="run_schedule")
def run_schedule(event, context):
    # EventBridge Scheduler's one target (issue 12): a firing, handed to the target registered under its name.
    return schedule_handler.run_schedule(event, services().schedule_targets)

# Queue names are fixed when the app is packaged (Chalice wires the event sources then).
_stage = Settings()


@app.on_sqs_message(queue=_stage.resource_name(resources.TRIALS_QUEUE.name), batch_size=1)
def dispatch_trials(event):
    return aws_events.dispatch_trials(record.body for record in event)


@app.on_sqs_message(queue=_stage.resource_name(resources.SERVING_REQUESTS_QUEUE.name), batch_size=10)
def serve_queue_items(event):
    # The batch is deleted when this returns; it raises (and SQS redelivers) if results cannot be written.
    return aws_events.serve_queue_items(record.body for record in event)


@app.on_cw_event({"source": ["aws.batch"], "detail-type": ["Batch Job State Change"], "detail": {"status": ["FAILED"]}})
def batch_job_failed(event):
    return aws_events.batch_job_failed(event.detail)


@app.lambda_function(name="dataset_job_ended")
def dataset_job_ended(event, context):
    # infra's rule on dataset check jobs' ends (dataset_checks.py): the verdict recorded now, and the
    # retrain loop waiting for a dataset of labelled captured traffic goes on (issue 12 item 6).
    return aws_events.dataset_job_ended(event.get("detail") or {})


@app.on_cw_event({"source": ["aws.codebuild"], "detail-type": ["CodeBuild Build State Change"],
                  "detail": {"build-status": ["SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT"]}})
def image_build_changed(event):
    # A managed-image build ended: recorded now, so one that died is FAILED with its log link.
    return aws_events.image_build_changed(event.detail)
