"""What the local stack does with the jobs it finds running when it starts from saved state.

moto cannot resume a Step Functions execution (the restored ones are ABORTED, see
moto_snapshot.py), and the processes that ran trials, stress tests and endpoints ended with the
stack. So, before the API serves:

- the task-token queues are emptied: each message in them belongs to an aborted execution;
- train jobs go on: their unfinished trials end ERRORED with the reason, each running worker
  continues in a new execution (``TrainJobService.resume_interrupted``);
- stress tests that were running end FAILING with the reason (their input is not kept
  in a form that could start them again);
- inference jobs get their endpoints back, started again from their bundles (one that cannot be
  started ends ERRORED with the reason).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from chalicelib.resources import LAMBDA_SHIM_QUEUE, TRIALS_QUEUE

log = logging.getLogger("kilele.local")

STACK_STOPPED = "the local stack stopped while this job was running"
MOTO_RESTARTED = "the local stack's emulated AWS (moto) crashed and was restarted while this job was running"
#: Queues whose messages carry task tokens of executions (the serving queue holds users' requests: kept).
TASK_TOKEN_QUEUES = (TRIALS_QUEUE.name, LAMBDA_SHIM_QUEUE.name)


@dataclass
class Recovery:
    """What :func:`recover` did."""

    workers_resumed: int = 0
    stress_tests_ended: int = 0
    endpoints: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        served = sum(1 for job in self.endpoints if job.get("status") in ("STARTED", "RUNNING"))
        return (f"resumed {self.workers_resumed} train-job workers, ended {self.stress_tests_ended} stress tests, "
                f"restarted {served} of {len(self.endpoints)} endpoints")


def purge_task_token_queues(services: Any, queue_urls: dict[str, str]) -> None:
    """Empty the queues whose messages answer executions that no longer run."""
    sqs = services.aws.client("sqs")
    for name in TASK_TOKEN_QUEUES:
        if name in queue_urls:
            try:
                sqs.purge_queue(QueueUrl=queue_urls[name])
            except Exception as e:  # noqa: BLE001 - e.g. PurgeQueueInProgress: their tokens fail when answered
                log.warning("recovery: could not empty the %s queue: %s", name, e)


def recover(services: Any, queue_urls: dict[str, str], reason: str = STACK_STOPPED) -> Recovery:
    """Bring every job left running in line with a stack whose executions did not survive."""
    purge_task_token_queues(services, queue_urls)
    done = Recovery()
    done.workers_resumed = services.train_jobs.resume_interrupted(reason)
    done.stress_tests_ended = services.stress_tests.end_interrupted(reason)
    done.endpoints = services.inference_jobs.resume_endpoints(reason)
    return done
