"""Large presigned uploads are checked by a job, not in the request (issue 13, finding 3): the
dataset is PENDING, then READY with the same stats as a checked-at-once upload, or INVALID with
the check's message; a job that cannot start or crashes ends INVALID with a reason."""
from __future__ import annotations

import logging

import pytest

from chalicelib.entities import Task, UserType
from chalicelib.errors import Conflict, Unavailable

from unit.services.fakes import FakeDatasetCheckDispatcher, services

TABULAR = Task.TABULAR_CLASSIFICATION
CSV = b"x1,x2,target\n1,2,a\n3,4,b\n5,6,a\n"
BAD_CSV = b"x1,x2,target\n1,2,a\n3,oops,b\n"


@pytest.fixture
def checks():
    return FakeDatasetCheckDispatcher()


@pytest.fixture
def h(checks):
    from settings_support import make_settings

    # Threshold below the test files: every presigned upload goes through the job.
    return services(settings=make_settings().with_values(dataset_check_threshold_bytes=10),
                    dataset_check_dispatcher=checks)


@pytest.fixture
def dev(h):
    return h.user(UserType.APP_DEVELOPER)


def uploaded(h, dev, content: bytes) -> str:
    out = h.services.datasets.start_upload(dev, "big", TABULAR, len(content), target_column="target")
    h.fakes.blobs.put_bytes(h.fakes.datasets.get(out["dataset"]["id"]).object_key, content)
    return out["dataset"]["id"]


def test_a_large_upload_is_pending_then_ready_with_the_checks_stats(h, dev, checks):
    dataset_id = uploaded(h, dev, CSV)
    out = h.services.datasets.complete_upload(dev, dataset_id)
    assert (out["status"], out["size_bytes"], out["stats"]) == ("PENDING", len(CSV), {})
    assert checks.queued == [dataset_id]
    assert h.services.datasets.list(dev) == []  # not usable while PENDING
    with pytest.raises(Conflict, match="already PENDING"):
        h.services.datasets.complete_upload(dev, dataset_id)

    h.services.datasets.check_job.run(dataset_id)
    done = h.services.datasets.get(dev, dataset_id)
    assert (done["status"], done["error"]) == ("READY", None)
    assert done["stats"] == {"rows": 3, "features": ["x1", "x2"], "target_column": "target", "classes": 2}
    assert [d["id"] for d in h.services.datasets.list(dev)] == [dataset_id]
    h.services.datasets.check_job.run(dataset_id)  # a second delivery changes nothing
    assert h.services.datasets.get(dev, dataset_id) == done


def test_a_bad_large_upload_ends_invalid_with_the_message(h, dev, checks):
    dataset_id = uploaded(h, dev, BAD_CSV)
    assert h.services.datasets.complete_upload(dev, dataset_id)["status"] == "PENDING"
    h.services.datasets.check_job.run(dataset_id)
    out = h.services.datasets.get(dev, dataset_id)
    assert out["status"] == "INVALID"
    assert out["error"] == "line 3, column 'x2': 'oops' is not a number"
    assert h.fakes.blobs.objects == {}  # the refused file is deleted; the record says why


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_crashed_check_ends_invalid_with_a_reason_and_a_log(h, dev, checks):
    dataset_id = uploaded(h, dev, CSV)
    h.services.datasets.complete_upload(dev, dataset_id)
    h.fakes.blobs.failures["download_to"] = OSError("connection reset")
    # A handler on the logger itself: the app's logging setup (other tests) may stop propagation.
    records, logger = Records(), logging.getLogger("kilele.dataset_checks")
    logger.addHandler(records)
    try:
        h.services.datasets.check_job.run(dataset_id)
    finally:
        logger.removeHandler(records)
    out = h.services.datasets.get(dev, dataset_id)
    assert (out["status"], out["error"]) == ("INVALID", "the check job failed: OSError: connection reset")
    assert f"the check of dataset {dataset_id} failed" in records.messages


def test_a_check_that_cannot_start_ends_invalid(h, dev, checks):
    checks.failures["dispatch"] = Unavailable("no capacity")
    dataset_id = uploaded(h, dev, CSV)
    with pytest.raises(Unavailable):
        h.services.datasets.complete_upload(dev, dataset_id)
    out = h.services.datasets.get(dev, dataset_id)
    assert (out["status"], out["error"]) == ("INVALID", "the check job could not be started: no capacity")


def test_a_lost_check_job_ends_invalid_when_the_dataset_is_next_read(h, dev, checks):
    dataset_id = uploaded(h, dev, CSV)
    h.services.datasets.complete_upload(dev, dataset_id)  # the job is queued, and never runs
    h.fakes.clock.advance(seconds=h.settings.dataset_check_timeout_seconds)
    assert h.services.datasets.get(dev, dataset_id)["status"] == "PENDING"  # not yet over the bound
    h.fakes.clock.advance(seconds=1)
    out = h.services.datasets.get(dev, dataset_id)
    assert out["status"] == "INVALID" and out["error"].startswith("the check job did not end within 3600 s")
    assert h.fakes.datasets.get(dataset_id).status.value == "INVALID" and h.fakes.blobs.objects == {}


def test_uploads_at_or_under_the_threshold_stay_synchronous(checks):
    from settings_support import make_settings

    h = services(settings=make_settings().with_values(dataset_check_threshold_bytes=len(CSV)),
                 dataset_check_dispatcher=checks)
    dev = h.user(UserType.APP_DEVELOPER)
    out = h.services.datasets.complete_upload(dev, uploaded(h, dev, CSV))
    assert out["status"] == "READY" and checks.queued == []


def test_the_local_dispatcher_runs_the_job_on_a_thread():
    from chalicelib.adapters.dataset_checks.local import LocalDatasetCheckDispatcher

    ran: list[str] = []
    dispatcher = LocalDatasetCheckDispatcher(ran.append)
    dispatcher.dispatch("d-1")
    dispatcher.close(wait=True)
    assert ran == ["d-1"]
    with pytest.raises(Unavailable):
        dispatcher.dispatch("d-2")
