"""Large datasets on the local stack (issue 13, finding 3): above the check threshold a presigned
upload is PENDING, then the check job (the local dispatch twin) makes it READY, or INVALID with
the message, which the SDK raises."""
from __future__ import annotations

import pytest

from kilele.errors import DatasetInvalidError

from .conftest import EXAMPLES, SUPERADMIN

pytestmark = pytest.mark.slow

IRIS_TRAIN = EXAMPLES / "datasets" / "iris_train.csv"


def test_a_large_dataset_is_pending_then_ready_or_invalid(stack_factory, tmp_path):
    stack = stack_factory(KILELE_DATASET_CHECK_THRESHOLD_BYTES="1000")
    client = stack.client()
    client.login(*SUPERADMIN)
    client.max_direct_upload_bytes = 1000  # the presigned way, as for any large file
    size = IRIS_TRAIN.stat().st_size
    assert size > 1000

    pending = client.create_dataset(name="big", task="TABULAR_CLASSIFICATION", dataset_path=str(IRIS_TRAIN),
                                    wait=False)
    assert (pending["status"], pending["size_bytes"]) == ("PENDING", size)
    ready = client.wait_for_dataset(pending["id"], timeout=60, poll_rate_sec=0.2)
    assert ready["status"] == "READY" and ready["stats"]["rows"] > 0 and ready["error"] is None
    assert [d["id"] for d in client.get_datasets()] == [pending["id"]]

    broken = tmp_path / "broken.csv"
    broken.write_text(IRIS_TRAIN.read_text().replace("\n", "\nnot,a,row\n", 1))
    with pytest.raises(DatasetInvalidError, match="is INVALID: line 2") as caught:
        client.create_dataset(name="broken", task="TABULAR_CLASSIFICATION", dataset_path=str(broken),
                              timeout=60, poll_rate_sec=0.2)
    invalid = client.get_dataset(caught.value.dataset["id"])
    assert invalid["status"] == "INVALID" and invalid["error"].startswith("line 2")
