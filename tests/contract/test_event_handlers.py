"""The Chalice event handlers (app.py's Lambdas fed by SQS and EventBridge) and where their
contract suites run them.

Each handler is invoked through ``chalice.test.Client(app).lambda_.invoke`` with events the
client generates, inside the suite of the twin pair it belongs to:

- ``dispatch_trials`` (trials queue -> the installed trial dispatcher):
  test_trial_dispatch.py, ``test_the_trials_queue_consumer_dispatches_each_message[batch]``;
- ``batch_job_failed`` (EventBridge "Batch Job State Change", FAILED -> the task token fails):
  test_trial_dispatch.py, the batch twin's ``lose`` in ``test_a_lost_worker_fails_its_task_token...``,
  ``test_a_run_lost_after_its_worker_answered_changes_nothing`` and
  ``test_batch_job_failed_handles_only_failed_trial_jobs``;
- ``serve_queue_items`` (serving-requests queue -> results): test_serving_queue_consumers.py,
  the ``lambda`` consumer;
- ``image_build_changed`` (EventBridge "CodeBuild Build State Change" of an ended build -> the
  managed images of that build recorded): tests/workflows/test_image_build_events.py, with the
  event shape CodeBuild documents (moto emits no CodeBuild events).

Here: every event handler has such a suite (a new one fails this test until it gets one), and the
handlers' event sources are the ones those suites assume and the local consumers mirror.
"""
from __future__ import annotations

from typing import Any

from chalice.app import CloudWatchEventConfig, SQSEventConfig
from chalice.test import Client

from app import app
from chalicelib.resources import SERVING_REQUESTS_QUEUE, TRIALS_QUEUE
from chalicelib.settings import Settings

COVERED = {"dispatch_trials", "batch_job_failed", "serve_queue_items", "image_build_changed"}


def test_every_event_handler_has_a_contract_suite():
    assert {source.name for source in app.event_sources} == COVERED


def test_the_sqs_handlers_read_the_queues_the_local_consumers_read():
    settings = Settings()  # app.py names its queues from the packaging environment's settings
    sources = {s.name: s for s in app.event_sources if isinstance(s, SQSEventConfig)}
    trials, serving = sources["dispatch_trials"], sources["serve_queue_items"]
    assert (trials.queue, trials.batch_size) == (settings.resource_name(TRIALS_QUEUE.name), 1)
    # up to 10 messages per invocation, as the local consumer takes up to 10 per receive
    assert (serving.queue, serving.batch_size) == (settings.resource_name(SERVING_REQUESTS_QUEUE.name), 10)


def _matches(pattern: Any, event: Any) -> bool:
    """EventBridge's matching for the pattern forms app.py uses (nested objects, lists of values)."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(k in event and _matches(v, event[k]) for k, v in pattern.items())
    return event in pattern


def test_batch_job_failed_subscribes_to_failed_batch_jobs_only():
    [source] = [s for s in app.event_sources if isinstance(s, CloudWatchEventConfig) and s.name == "batch_job_failed"]
    events = Client(app).events

    def batch_event(status: str) -> dict[str, Any]:
        return events.generate_cw_event(source="aws.batch", detail_type="Batch Job State Change",
                                        detail={"jobId": "j", "status": status}, resources=[])

    assert _matches(source.event_pattern, batch_event("FAILED"))
    assert not _matches(source.event_pattern, batch_event("SUCCEEDED"))
    assert not _matches(source.event_pattern, {**batch_event("FAILED"), "source": "aws.ecs"})


def test_image_build_changed_subscribes_to_ended_codebuild_builds_only():
    [source] = [s for s in app.event_sources if isinstance(s, CloudWatchEventConfig) and s.name == "image_build_changed"]
    events = Client(app).events

    def build_event(status: str) -> dict[str, Any]:
        return events.generate_cw_event(source="aws.codebuild", detail_type="CodeBuild Build State Change",
                                        detail={"build-status": status, "project-name": "p"}, resources=[])

    for ended in ("SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT"):
        assert _matches(source.event_pattern, build_event(ended)), ended
    assert not _matches(source.event_pattern, build_event("IN_PROGRESS"))
    assert not _matches(source.event_pattern, {**build_event("FAILED"), "source": "aws.batch"})
