"""The non-HTTP Lambdas' logic on AWS: trial dispatch from the trials queue, the Batch
job-state-change rule, CodeBuild's build-state-change rule, and the queue API's consumer. (Locally, chalicelib/local/ consumes the same
queues and calls the same services.)"""
from __future__ import annotations

import json
from typing import Any, Iterable


def dispatch_trials(bodies: Iterable[str]) -> list[str]:
    """Submit each trials-queue message to the worker's compute (Batch)."""
    from chalicelib.wiring import services

    dispatcher = services().trial_dispatcher
    return [dispatcher.dispatch(json.loads(body)) for body in bodies]


def batch_job_failed(detail: dict[str, Any]) -> Any:
    """A Batch job ended FAILED: fail its trial's task token now rather than at the heartbeat
    timeout; or, for a dataset check's job (issue 13, finding 3), record the dataset INVALID
    with Batch's reason unless the job wrote its verdict first."""
    from chalicelib.adapters.dataset_checks.batch import lost_check
    from chalicelib.wiring import services

    check = lost_check(detail)
    if check is not None:
        dataset = services().datasets.check_job.job_lost(*check)
        return None if dataset is None else {"dataset": dataset.id, "status": dataset.status.value}
    return services().trial_dispatcher.fail_lost_job(detail)


def dataset_job_ended(detail: dict[str, Any]) -> Any:
    """A dataset check's (or build's) Batch job ended (infra: the rule on those jobs, SUCCEEDED
    or FAILED): its verdict is recorded now, and whoever waits for the dataset goes on -- the
    retrain loop starts its train job on a READY dataset of labelled captured traffic (issue 12
    item 6), or records why not. Any other job: nothing."""
    from chalicelib.adapters.dataset_checks.batch import ended_check, failure_reason
    from chalicelib.wiring import services

    ended = ended_check(detail)
    if ended is None:
        return None
    dataset = services().datasets.check_job.job_ended(ended[0], ended[1], failure_reason(detail))
    return None if dataset is None else {"dataset": dataset.id, "status": dataset.status.value}


def image_build_changed(detail: dict[str, Any]) -> dict[str, Any]:
    """A CodeBuild build ended: the image builder records it and the images it serves follow; a
    platform image's build (``kilele images build``, or the deploy's) publishes its end."""
    from chalicelib.wiring import services

    recorded = services().managed_images.build_event(detail)
    if not recorded["recorded"]:
        platform = services().platform_images.build_event(detail)
        if platform is not None:
            return {**recorded, "platform_image": platform}
    return recorded


def serve_queue_items(bodies: Iterable[str]) -> dict[str, Any]:
    """Answer a batch of queue-API requests; raises (so SQS redelivers) if results cannot be written."""
    from chalicelib.wiring import services

    return services().queues.process(bodies).to_dict()
