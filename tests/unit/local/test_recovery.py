"""Recovery at start-up from saved state, on the services' fakes: the task-token queues are
emptied (not the users' serving queue), then train jobs, stress tests and endpoints are put right."""
from __future__ import annotations

from chalicelib.entities import TrialStatus
from chalicelib.local.recovery import STACK_STOPPED, recover
from unit.services.fakes import services
from unit.services.test_interrupted_jobs import running_job, serving


class RecordingSqs:
    def __init__(self, fail=False):
        self.purged, self.fail = [], fail

    def purge_queue(self, QueueUrl):
        if self.fail:
            raise RuntimeError("PurgeQueueInProgress")
        self.purged.append(QueueUrl)


class Aws:
    def __init__(self, sqs):
        self.sqs = sqs

    def client(self, name):
        assert name == "sqs"
        return self.sqs


QUEUES = {"trials": "q/trials", "lambda-shim": "q/shim", "serving-requests": "q/serving"}


def test_recovery_empties_the_task_token_queues_and_puts_every_job_right():
    sqs = RecordingSqs()
    h = services(aws=Aws(sqs))
    _, job = running_job(h)
    _, served = serving(h)
    h.fakes.endpoints.deployed.clear()

    done = recover(h.services, QUEUES)
    assert sorted(sqs.purged) == ["q/shim", "q/trials"]
    assert done.workers_resumed == len(job.workers) and done.stress_tests_ended == 0
    assert [e["status"] for e in done.endpoints] == ["RUNNING"]
    assert h.fakes.trials.get("t2").status is TrialStatus.ERRORED and h.fakes.trials.get("t2").error_message == STACK_STOPPED
    assert done.summary() == f"resumed {len(job.workers)} train-job workers, ended 0 stress tests, restarted 1 of 1 endpoints"


def test_a_queue_that_cannot_be_emptied_does_not_stop_the_recovery():
    h = services(aws=Aws(RecordingSqs(fail=True)))
    _, job = running_job(h)
    assert recover(h.services, QUEUES).workers_resumed == len(job.workers)
